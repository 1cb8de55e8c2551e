"""The load generator: its statistics, both arrival models, Ctrl-C, and `inv load` on a real mesh.

Model and statistics tests use a fake front (a stdlib HTTP server on a free port) whose
answers and stalls the test controls; the acceptance tests drive `inv load` against the
real local mesh and compare its summary with the traces the trace proxy received.
"""
from __future__ import annotations

import _thread
import io
import json
import math
import signal
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from meshtools.views.load import LatencyHistogram, LoadConfig, LoadRun, progress_line, render_summary, run_load
from meshtools.views.trace_view import status_code, url_path
from meshtools.views.zipkin_client import ZipkinClient
from tests.support.inv_process import run_inv, started_inv


# -- statistics -------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=1e-5, max_value=100.0), min_size=1, max_size=300),
       st.sampled_from([50, 90, 99, 100]))
def test_histogram_percentiles_are_within_one_percent_of_exact(values, p):
    h = LatencyHistogram()
    for v in values:
        h.record(v)
    exact = sorted(values)[max(1, math.ceil(p / 100 * len(values))) - 1]
    assert h.percentile(p) == pytest.approx(exact, rel=0.0101)
    assert h.max == max(values) and h.count == len(values)


def test_histogram_memory_stays_bounded_on_long_runs():
    h = LatencyHistogram()
    for i in range(200_000):
        h.record(0.001 + (i % 5000) * 0.001)  # 1 ms .. 5 s
    assert len(h.counts) < 700  # 1% buckets over 3.7 decades, whatever the request count
    assert sum(count for _, _, count in h.bins()) == 200_000


# -- a fake front -----------------------------------------------------------------------


class FakeFront(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), FakeHandler)
        self.paths: list[str] = []
        self.connections = 0
        self.stall_until = 0.0  # answers wait until this monotonic time
        self.delay = 0.0
        self.answer_first = None  # answer this many requests, then hang up on every one (a front that died)
        self.lock = threading.Lock()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class FakeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Envoy

    def setup(self):
        super().setup()
        # Headers and body go out in two writes; without this, Nagle and delayed ACKs add 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.lock:
            self.server.connections += 1

    def do_GET(self):
        with self.server.lock:
            self.server.paths.append(self.path)
            dead = self.server.answer_first is not None and len(self.server.paths) > self.server.answer_first
        if dead:
            self.close_connection = True  # no answer at all: the client sees the connection go
            return
        time.sleep(max(self.server.delay, self.server.stall_until - time.monotonic()))
        status = 500 if self.path.endswith("/chris") else 200
        body = b"hello"
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.send_header("x-request-id", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_front():
    server = FakeFront()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_request_budget_cycles_names_and_reuses_connections_fake_front(fake_front):
    summary = run_load(LoadConfig(url=fake_front.url, requests=40, concurrency=2, names=("a", "b", "chris")))
    assert summary.completed == 40 == len(fake_front.paths)
    assert sorted(fake_front.paths) == sorted(f"/echo/{('a', 'b', 'chris')[i % 3]}" for i in range(40))
    assert summary.errors == {"500": 13} and summary.statuses == {200: 27, 500: 13}
    assert fake_front.connections == 2  # one keep-alive connection per worker


def test_open_model_keeps_its_pace_and_counts_a_stall_from_the_intended_send_time_fake_front(fake_front):
    # 1 s stall at the start. A closed loop with one worker would send ~1 request during it
    # and report one slow request; at a fixed 20 req/s the 20 requests due during the
    # stall all wait, and their latency must say so.
    fake_front.stall_until = time.monotonic() + 1.0
    summary = run_load(LoadConfig(url=fake_front.url, rate=20, duration=2.0, concurrency=1))
    assert 38 <= summary.completed <= 41
    # Requests due at 0, 50, ... 950 ms all answer at ~1 s: 0.05 .. 1 s latencies, one each.
    assert summary.histogram.percentile(75) > 0.4
    assert summary.histogram.percentile(90) > 0.7
    assert summary.histogram.max > 0.9
    assert summary.late_starts >= 15


def test_closed_model_sends_next_request_when_the_previous_answers_fake_front(fake_front):
    fake_front.delay = 0.05
    summary = run_load(LoadConfig(url=fake_front.url, duration=1.0, concurrency=2))
    assert 30 <= summary.completed <= 42  # 2 workers × 1 s / 50 ms
    assert summary.histogram.percentile(99) < 0.2


def test_ctrl_c_stops_the_run_and_keeps_the_summary_fake_front(fake_front):
    fake_front.delay = 0.01
    run = LoadRun(LoadConfig(url=fake_front.url, duration=60, concurrency=2))
    threading.Timer(0.5, _thread.interrupt_main).start()
    started = time.monotonic()
    summary = run.run(grace=1.0)
    assert time.monotonic() - started < 3
    assert summary.interrupted and summary.completed > 5
    assert summary.to_dict()["requests"] == summary.completed


def test_timeouts_count_as_errors_fake_front(fake_front):
    fake_front.delay = 1.0
    summary = run_load(LoadConfig(url=fake_front.url, requests=2, concurrency=2, timeout=0.2))
    assert summary.errors == {"timeout": 2}


def test_open_model_reports_the_send_rate_over_the_sending_window_fake_front(fake_front):
    # 10 requests at 10 req/s, each answered 0.8 s later: sent in 1 s, answered until ~1.7 s.
    fake_front.delay = 0.8
    summary = run_load(LoadConfig(url=fake_front.url, rate=10, duration=1.0))
    assert summary.sent == 10
    assert summary.send_rate == pytest.approx(10, rel=0.1)
    d = summary.to_dict()
    assert d["send_rate"] == pytest.approx(10, rel=0.1)


def test_a_duration_ends_the_run_on_time_and_counts_what_was_still_in_flight_fake_front(fake_front):
    # `inv load --duration 5` ran 7.3 s, waiting for slow answers; the live line read 4s/3s.
    fake_front.delay = 0.8
    summary = run_load(LoadConfig(url=fake_front.url, concurrency=4, duration=1.0))
    assert summary.elapsed < 1.3
    assert summary.completed == 4 and summary.in_flight_abandoned == 4  # answered at 0.8 s; 4 more sent then
    out = io.StringIO()
    render_summary(summary, Console(file=out, width=80))
    assert "4 requests unanswered at the end, not counted" in out.getvalue()
    assert str(progress_line({"requests": 1, "errors": 0, "elapsed": 1.6, "rate": 1.0, "p50": 0.8,
                              "in_flight": 4}, summary.config)).startswith("1 request · 1.0 req/s · 1s/1s ·")


def _summary_text(summary) -> list[str]:
    out = io.StringIO()
    render_summary(summary, Console(file=out, width=80))
    return out.getvalue().splitlines()


def test_the_summary_speaks_plainly_and_sizes_its_histogram_to_the_data(fake_front):
    one = run_load(LoadConfig(url=fake_front.url, requests=1))
    lines = _summary_text(one)
    assert "1 request in " in lines[1] and not any("█" in line for line in lines)
    few = run_load(LoadConfig(url=fake_front.url, requests=3))
    assert not any("█" in line for line in _summary_text(few))  # p50…max already show 3 latencies
    many = run_load(LoadConfig(url=fake_front.url, requests=100, concurrency=8))
    bars = [line for line in _summary_text(many) if " ms " in line and "latency" not in line]
    assert 1 <= len(bars) <= 10  # about √100, not 12 mostly empty rows
    assert all(line == line.rstrip() for line in _summary_text(many))


def test_a_run_stopped_before_any_answer_says_so_without_a_summary(fake_front):
    fake_front.delay = 2.0
    summary = run_load(LoadConfig(url=fake_front.url, concurrency=1, duration=0.3))
    lines = _summary_text(summary)
    assert summary.completed == 0
    assert lines[1:] == ["stopped after 0.3 s with no answer; 1 request unanswered at the end, not counted"]


def test_bad_options_are_one_sentence_and_a_failure():
    result = inv("load", "--rate", "zero")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "--rate must be a number, got 'zero'."


BAD_NUMBERS = {
    "rate-inf": (dict(rate=math.inf), "--rate must be a positive number"),
    "rate-nan": (dict(rate=math.nan), "--rate must be a positive number"),
    "rate-negative": (dict(rate=-1.0), "--rate must be a positive number"),
    "duration-nan": (dict(duration=math.nan), "--duration must be a positive number of seconds"),
    "duration-inf": (dict(duration=math.inf), "--duration must be a positive number of seconds"),
    "duration-zero": (dict(duration=0.0), "--duration must be a positive number of seconds"),
    "timeout-negative": (dict(timeout=-1.0), "--timeout must be a positive number of seconds"),
    "timeout-zero": (dict(timeout=0.0), "--timeout must be a positive number of seconds"),
    "timeout-nan": (dict(timeout=math.nan), "--timeout must be a positive number of seconds"),
    "timeout-huge": (dict(timeout=1e300), "--timeout must be a positive number of seconds"),
    "requests-zero": (dict(requests=0), "--requests must be a positive whole number"),
    "concurrency-zero": (dict(concurrency=0), "--concurrency must be a whole number from 1"),
    "concurrency-huge": (dict(concurrency=10**6), "--concurrency must be a whole number from 1"),
}


@pytest.mark.parametrize("case", sorted(BAD_NUMBERS))
def test_every_numeric_option_must_be_finite_and_positive(case):
    values, expected = BAD_NUMBERS[case]
    with pytest.raises(ValueError) as caught:
        LoadConfig(url="http://127.0.0.1:1", **values)
    assert str(caught.value).startswith(expected) and str(caught.value).endswith(".")


@pytest.mark.parametrize("args", [["--timeout", "-1"], ["--timeout", "0"], ["--rate", "inf"], ["--url", "nonsense"]],
                         ids=["timeout-negative", "timeout-zero", "rate-inf", "url"])
def test_inv_load_refuses_bad_values_before_sending_anything(args):
    result = inv("load", "--requests", "1", *args, timeout=30)
    message = result.stderr.strip()
    assert result.returncode == 1 and len(message.splitlines()) == 1, message
    assert message.startswith(args[0]), message


# -- acceptance: `inv load` on the real local mesh ---------------------------------------


def inv(*args, timeout=120):
    return run_inv(*args, env={"NO_COLOR": "1"}, timeout=timeout)


def traces_seen(trace_proxy_url: str, name: str, expected: int, since_ms: int, timeout: float = 15.0):
    """Root spans of /echo/NAME traces the trace proxy holds, once `expected` arrived or at the deadline."""
    client = ZipkinClient(trace_proxy_url)
    deadline = time.monotonic() + timeout
    while True:
        now_ms = int(time.time() * 1000)
        found = client.traces(service_name="front-envoy", end_ts_ms=now_ms, lookback_ms=now_ms - since_ms,
                              limit=10_000)
        roots = [s for t in found for s in t
                 if not s.get("parentId") and url_path(s) == f"/echo/{name}" and s["timestamp"] >= since_ms * 1000]
        if len(roots) >= expected or time.monotonic() > deadline:
            return roots
        time.sleep(0.2)


@pytest.mark.parametrize("model", [["--concurrency", "4"], ["--rate", "15"]], ids=["closed", "open"])
def test_inv_load_summary_matches_the_traces_the_proxy_saw(local_mesh, model):
    name = f"load{uuid.uuid4().hex[:8]}"
    since_ms = int(time.time() * 1000)
    result = inv("load", "--url", local_mesh.layout.front_url, "--duration", "3", "--names", f"{name},chris",
                 *model, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["model"] == ("open" if "--rate" in model else "closed")
    assert summary["requests"] >= 10
    assert summary["requests"] == summary["ok"] + summary["errors"]
    # Every other name is chris (a 500); what was still in flight at the end is not counted.
    abandoned = summary["in_flight_abandoned"]
    assert summary["sent"] == summary["requests"] + abandoned
    assert set(summary["errors_by_status"]) == {"500"}
    assert summary["errors"] <= summary["sent"] // 2 <= summary["errors"] + abandoned
    lat = summary["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    if "--rate" in model:
        assert summary["send_rate"] == pytest.approx(15, rel=0.1)

    # The requests cut off by the clock were answered all the same: their traces are there too.
    sent_names = summary["sent"] - summary["sent"] // 2
    ok_roots = traces_seen(local_mesh.layout.trace_proxy_url, name, sent_names, since_ms)
    assert len(ok_roots) == sent_names
    assert all(status_code(s) == 200 for s in ok_roots)
    chris_roots = traces_seen(local_mesh.layout.trace_proxy_url, "chris", summary["sent"] // 2, since_ms)
    assert len(chris_roots) == summary["sent"] // 2
    assert all(status_code(s) == 500 for s in chris_roots)


def test_inv_load_prints_a_readable_summary_with_histogram(local_mesh):
    result = inv("load", "--url", local_mesh.layout.front_url, "--requests", "12", "--concurrency", "3")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "12 requests in" in out and "errors 0" in out
    assert all(k in out for k in ("p50", "p90", "p99", "max"))
    assert "█" in out  # the latency histogram


def test_inv_load_on_sigint_prints_the_summary_and_exits_130_fake_front(fake_front):
    fake_front.delay = 0.01
    with started_inv("load", "--url", fake_front.url, "--duration", "60", "--json") as proc:
        deadline = time.monotonic() + 20
        while len(fake_front.paths) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 130, err
    summary = json.loads(out)
    assert summary["interrupted"] and summary["requests"] >= 10
    assert "Traceback" not in err


def test_inv_load_on_sigterm_still_prints_the_summary_fake_front(fake_front):
    fake_front.delay = 0.01
    with started_inv("load", "--url", fake_front.url, "--duration", "60", env={"NO_COLOR": "1"}) as proc:
        deadline = time.monotonic() + 20
        while len(fake_front.paths) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)  # what `kill` and `timeout` send
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 130, err
    assert "requests " in out and "interrupted;" in out and "Traceback" not in err


def test_requests_in_flight_at_the_end_can_finish_instead_of_being_cut_off_fake_front(fake_front):
    # `inv load --duration N` exited with requests in flight: Envoy saw client disconnects and
    # every such trace read "ERROR (no response, DC)" while the summary said "errors 0".
    fake_front.delay = 0.8
    run = LoadRun(LoadConfig(url=fake_front.url, concurrency=3, duration=0.5))
    summary = run.run()
    assert summary.in_flight_abandoned == 3
    assert run.drain(10) == 0  # each got its answer
    assert summary.completed == 0 and summary.in_flight_abandoned == 3  # and none is counted late


def test_inv_load_lets_what_is_in_flight_finish_after_the_summary_fake_front(fake_front):
    fake_front.delay = 1.0
    result = inv("load", "--url", fake_front.url, "--duration", "0.5", "--concurrency", "2")
    assert result.returncode == 0, result.stderr
    assert "2 requests unanswered at the end, not counted" in " ".join(result.stdout.split())
    assert "Letting the 2 requests still in flight finish so their traces end cleanly" in " ".join(result.stderr.split())
    assert all(len(line) <= 80 for line in (result.stdout + result.stderr).splitlines())  # wrapped at words


def test_requests_with_no_answer_are_counted_apart_and_left_out_of_the_latencies_fake_front(fake_front):
    # front-envoy killed mid-run: "ERRORS 328 (connection error: 328)", then "latency p50 2.3 ms",
    # the refused requests counted as fast ones.
    fake_front.delay, fake_front.answer_first = 0.1, 10
    summary = run_load(LoadConfig(url=fake_front.url, requests=30, concurrency=1))
    assert summary.answered == 10 and summary.no_answer == 20 and summary.completed == 30
    assert summary.histogram.percentile(50) >= 0.1  # of the answered: every one took 100 ms
    text = "\n".join(_summary_text(summary))
    assert "20 requests got no answer: not in the latencies" in text
    assert "latency of the 10 answered p50 " in text


def test_fail_on_errors_exits_1_and_json_counts_every_kind_of_failure_fake_front(fake_front):
    fake_front.answer_first = 5
    result = inv("load", "--url", fake_front.url, "--requests", "12", "--concurrency", "1", "--names", "a,chris",
                 "--fail-on-errors", "--json")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "9 of 12 requests failed (--fail-on-errors)."
    summary = json.loads(result.stdout)
    assert (summary["answered"], summary["no_answer"], summary["unanswered"]) == (5, 7, 0)
    assert summary["errors_by_status"] == {"500": 2, "connection error": 7}
    assert summary["latency_of"] == "answered requests"
    fake_front.answer_first = None
    fine = inv("load", "--url", fake_front.url, "--requests", "3", "--names", "a,chris", "--json")
    assert fine.returncode == 0  # without the flag a failed run still exits 0, its summary tells
