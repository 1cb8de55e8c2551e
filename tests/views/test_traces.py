"""`inv traces` against a real trace proxy process fed with known Zipkin v2 spans.

The spans copy what the mesh's Envoys send for one /echo/NAME: front-envoy CLIENT →
service1 SERVER → 5 × [service1 CLIENT /stage/K → service2 SERVER], with known
timestamps, so the expected tree order, bar columns and breakdown numbers follow from them.
"""
from __future__ import annotations

import math
import threading
import time

import pytest
import requests

from meshtools.shared.net import free_port
from tests.support.inv_process import run_inv
from tests.support.trace_proxy_process import running_proxy

NOW_US = int(time.time() * 1e6)
OK_ID = "463ac35c9f6413ad"
ERROR_ID = "e00000000000000e"


def echo_trace(trace_id: str, t0: int, stage_us=(10_000, 10_000, 10_000, 1_500_000, 10_000), name="earth",
               status="200", service1="service1-1", service2="service2-0", stage_status=None):
    """12 spans of one /echo/NAME; stage K takes stage_us[K] µs in service1's client span."""
    stage_status = stage_status or {}

    def span(sid, parent, svc, kind, op, ts, dur, url, code):
        tags = {"http.method": "GET", "http.url": url, "http.status_code": code,
                "guid:x-request-id": f"req-{trace_id}", "upstream_cluster": "x", "response_flags": "-"}
        if int(code) >= 500:
            tags["error"] = "true"
        s = {"traceId": trace_id, "id": sid, "name": op, "kind": kind, "timestamp": ts, "duration": dur,
             "localEndpoint": {"serviceName": svc, "ipv4": "127.0.0.1"}, "tags": tags}
        if parent:
            s["parentId"] = parent
        return s

    stages, t = [], t0 + 2_000
    for k, dur in enumerate(stage_us):
        stages.append((k, t, dur))
        t += dur + 500
    total = t - t0 + 1_000
    front = f"http://127.0.0.1:8000/echo/{name}"
    sid = lambda n: f"{trace_id[:12]}{n:04x}"  # noqa: E731
    spans = [span(sid(1), None, "front-envoy", "CLIENT", "echo", t0, total, front, status),
             span(sid(2), sid(1), service1, "SERVER", "echo", t0 + 1_000, total - 1_500, front, status)]
    for k, ts, dur in stages:
        url = f"http://localhost:9000/stage/{k}"
        code = stage_status.get(k, "200")
        spans.append(span(sid(16 + k), sid(2), service1, "CLIENT", f"stage-{k}", ts, dur, url, code))
        spans.append(span(sid(32 + k), sid(16 + k), service2, "SERVER", f"stage-{k}", ts + 200, dur - 400, url, code))
    return spans


def expected_rows(spans):
    """(depth, service, operation) in tree order, worked out by hand for the echo shape."""
    by_id = {s["id"]: s for s in spans}
    root = next(s for s in spans if "parentId" not in s)
    rows = [(0, root)]
    ingress = next(s for s in spans if s.get("parentId") == root["id"])
    rows.append((1, ingress))
    for call in sorted((s for s in spans if s.get("parentId") == ingress["id"]), key=lambda s: s["timestamp"]):
        rows.append((2, call))
        rows.append((3, next(s for s in spans if s.get("parentId") == call["id"])))
    assert len(rows) == len(by_id) == 12
    return rows


# Breakdown fixture: 20 traces in service1-bd/service2-bd whose slow stage takes 100 ms,
# 200 ms, ... 2000 ms; two of them answer 500 at stage 3.
BREAKDOWN_SLOW_MS = [100 * (i + 1) for i in range(20)]
BREAKDOWN_ERRORS = {4, 11}


@pytest.fixture(scope="module")
def trace_proxy():
    with running_proxy("--settle", "0") as proxy:  # listed as soon as posted
        spans = echo_trace(OK_ID, NOW_US - 60_000_000)
        spans += echo_trace(ERROR_ID, NOW_US - 30_000_000, name="chris", status="500")
        for i, slow_ms in enumerate(BREAKDOWN_SLOW_MS):
            spans += echo_trace(f"bd{i:014x}", NOW_US - 300_000_000 + i * 5_000_000,
                                stage_us=(10_000, 10_000, 10_000, slow_ms * 1000, 10_000),
                                service1="service1-bd", service2="service2-bd",
                                stage_status={3: "500"} if i in BREAKDOWN_ERRORS else None)
        reply = requests.post(f"{proxy.url}/api/v2/spans", json=spans, timeout=10)
        assert reply.status_code == 202, reply.text
        yield proxy.url


def inv(*args, columns=200):
    return run_inv(*args, env={"COLUMNS": str(columns), "NO_COLOR": "1"}, timeout=60)


def table_lines(stdout: str, header_word: str) -> tuple[str, list[str]]:
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if header_word in line)
    return lines[start], [line for line in lines[start + 1:] if line.strip()]


def bar_of(line: str, column: int) -> tuple[int, int]:
    bar = line[column:]
    first = bar.index("█")
    return first, bar.count("█")


def test_waterfall_lists_spans_in_tree_order_with_bars_placed_by_time(trace_proxy):
    result = inv("traces", "--url", trace_proxy, "--id", OK_ID)
    assert result.returncode == 0, result.stderr
    header, rows = table_lines(result.stdout, "timeline")
    spans = echo_trace(OK_ID, NOW_US - 60_000_000)
    expected = expected_rows(spans)
    assert len(rows) == len(expected)
    column = header.index("timeline")
    t0 = min(s["timestamp"] for s in spans)
    total = max(s["timestamp"] + s["duration"] for s in spans) - t0
    width = bar_of(rows[0], column)[1]  # the root spans the whole timeline
    assert width >= 20
    for line, (depth, span) in zip(rows, expected):
        assert line.startswith("  " * depth + span["localEndpoint"]["serviceName"] + " "), line
        assert span["name"] in line and span["tags"]["http.url"].split("9000")[-1].split("8000")[-1] in line
        first = math.floor((span["timestamp"] - t0) * width / total)
        length = max(1, round(span["duration"] * width / total))
        assert bar_of(line, column) == (first, min(length, width - first)), line
    slow = [line for line in rows if "slowest" in line]
    assert len(slow) == 1 and "service2-0" in slow[0] and "/stage/3" in slow[0]


def test_errors_read_as_words_in_piped_output(trace_proxy):
    result = inv("traces", "--url", trace_proxy, "--id", ERROR_ID)
    assert result.returncode == 0, result.stderr
    assert "\x1b[" not in result.stdout
    assert "ERRORS in 2 spans" in result.stdout
    _, rows = table_lines(result.stdout, "timeline")
    assert [("/echo/chris" in r, "ERROR 500" in r) for r in rows[:2]] == [(True, True), (True, True)]
    assert not any("ERROR" in r for r in rows[2:])


def test_latest_trace_is_the_default_and_limit_lists_newest_first(trace_proxy):
    latest = inv("traces", "--url", trace_proxy)
    assert latest.returncode == 0, latest.stderr
    assert latest.stdout.startswith(f"trace {ERROR_ID} · 12 spans")
    listing = inv("traces", "--url", trace_proxy, "--limit", "3")
    assert listing.returncode == 0, listing.stderr
    _, rows = table_lines(listing.stdout, "trace id")
    assert [r.split()[1] for r in rows] == [ERROR_ID, OK_ID, f"bd{19:014x}"]
    assert "ERROR 500" in rows[0] and "ERROR" not in rows[1]


def nearest_rank(values, p):
    ordered = sorted(values)
    return ordered[math.ceil(p / 100 * len(ordered)) - 1]


def test_breakdown_by_service_and_url_gives_counts_errors_and_percentiles(trace_proxy):
    result = inv("traces", "--url", trace_proxy, "--breakdown", "serviceName,http.url", "--service", "service1-bd")
    assert result.returncode == 0, result.stderr
    header, rows = table_lines(result.stdout, "p99 ms")
    assert header.split() == ["serviceName", "http.url", "count", "errors", "p50", "ms", "p95", "ms",
                              "p99", "ms"]
    # Slowest p99 first: the echo spans that wrap everything, then the slow stage.
    assert rows[0].split()[:3] == ["service1-bd", "/echo/earth", "20"]
    first = rows[1].split()
    assert first[:2] == ["service1-bd", "/stage/3"]
    assert first[2] == "20"
    assert first[3:5] == ["ERRORS", str(len(BREAKDOWN_ERRORS))]
    assert [float(x) for x in first[5:8]] == [float(nearest_rank(BREAKDOWN_SLOW_MS, p)) for p in (50, 95, 99)]
    stage0 = next(r.split() for r in rows if r.split()[1].endswith("/stage/0"))
    assert stage0[2:] == ["20", "0", "10.0", "10.0", "10.0"]
    assert {r.split()[0] for r in rows} == {"service1-bd"}
    assert len(rows) == 6  # /echo/earth and five stages


def test_heatmap_puts_the_slowest_spans_in_the_top_band(trace_proxy):
    result = inv("traces", "--url", trace_proxy, "--heatmap", "--service", "service2-bd")
    assert result.returncode == 0, result.stderr
    assert "100 spans" in result.stdout  # 20 traces × 5 service2 spans
    lines = result.stdout.splitlines()
    top = next(line for line in lines if "ms │" in line)
    assert float(top.split("ms")[0]) == pytest.approx(max(BREAKDOWN_SLOW_MS) - 0.4, abs=0.1)
    assert top.split("│", 1)[1].strip(), "the top band holds the slowest stage/3 spans"


def test_unreachable_trace_proxy_is_one_sentence_and_a_failure():
    result = inv("traces", "--url", f"http://127.0.0.1:{free_port()}")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    message = result.stderr.strip()
    assert message.startswith("Cannot reach the trace proxy at") and len(message.splitlines()) == 1


def test_unknown_trace_id_says_so(trace_proxy):
    result = inv("traces", "--url", trace_proxy, "--id", "00000000000000aa")
    assert result.returncode != 0
    assert "No trace 00000000000000aa" in result.stderr


def test_id_takes_the_x_request_id_that_inv_echo_prints(trace_proxy):
    result = inv("traces", "--url", trace_proxy, "--id", f"req-{OK_ID}")  # the fixture's x-request-id
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"trace {OK_ID} · 12 spans")
    unknown = inv("traces", "--url", trace_proxy, "--id", "no-such-request")
    assert unknown.returncode != 0 and "No trace no-such-request" in unknown.stderr


def test_dash_h_is_help_on_every_view_task_not_a_short_flag():
    from meshtools.tasks import demo, views

    for t in (views.load, views.traces, views.bench, demo.echo):
        assert not [a for a in t.get_arguments() if "h" in a.names], t.name
        assert len(t.__doc__.strip().splitlines()[0]) <= 60, t.name  # one line in `inv --list`
    result = inv("traces", "-h")
    assert result.returncode == 0 and "Usage:" in result.stdout and "--heatmap" in result.stdout


def test_an_80_column_waterfall_cuts_no_name_and_no_phrase_of_its_title(trace_proxy):
    result = inv("traces", "--url", trace_proxy, "--id", ERROR_ID, columns=80)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in result.stdout
    title = " · ".join(lines[:2])
    assert lines[0].startswith(f"trace {ERROR_ID} · 12 spans") and title.endswith("ERRORS in 2 spans")
    header, rows = table_lines(result.stdout, "timeline")
    legend = "◀ slowest: the span that spends the most time itself"
    assert rows[-1] == legend  # the mark alone in the row, its meaning under the table: the timeline gets the room
    rows = rows[:-1]
    assert len(rows) == 12 and "stage-3 server" in rows[-3] and rows[-3].endswith("◀")
    assert all(line == line.rstrip() for line in lines)  # piped output has no padding at the ends


def test_an_80_column_breakdown_shows_url_paths_and_whole_numbers(trace_proxy):
    # Three label columns, one of them wide: the labels give way, the numbers never do.
    result = inv("traces", "--url", trace_proxy, "--breakdown", "serviceName,http.url,guid:x-request-id",
                 "--service", "service2-bd", columns=80)
    assert result.returncode == 0, result.stderr
    header, rows = table_lines(result.stdout, "p99 ms")
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    assert header.split()[-8:] == ["count", "errors", "p50", "ms", "p95", "ms", "p99", "ms"]
    assert header.split()[:2] == ["serviceName", "http.url"]  # as asked for, not "http.url path"
    slow = [r.split() for r in rows if r.split()[1] == "/stage/3"]
    assert sorted(float(r[-1]) for r in slow) == [ms - 0.4 for ms in BREAKDOWN_SLOW_MS]
    assert sum(r[-5] == "ERRORS" for r in slow) == len(BREAKDOWN_ERRORS)


def test_piped_output_is_100_columns_wide_like_inv_demo():
    # `| tee` and CI logs got lines up to 245 columns.
    import os
    import subprocess
    import sys

    code = ("from meshtools.views.trace_view import terminal_console; c = terminal_console(); "
            "print(c.width); c.print('x' + ' ' * 5)")
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out == "80\nx\n"


BAD_TRACES_CALLS = {
    "lookback-zero": (["--lookback", "0s"], "--lookback must be more than 0 seconds, got '0s'."),
    "lookback-negative": (["--lookback", "-5"], "--lookback takes a duration like 10, 10s, 1m30s or 1h, got '-5'."),
    "lookback-inf": (["--lookback", "inf"], "--lookback takes a duration like 10, 10s, 1m30s or 1h, got 'inf'."),
    "empty-id": (["--id", ""], "--id needs a trace id or an x-request-id"),
    "unknown-field": (["--breakdown", "nosuchfield"], "No span has nosuchfield; fields and tags they have include "
                                                      "serviceName, name, kind"),
    "not-a-url": (["--url", "nonsense"], "--url must be http://host:port"),
    # Filters that find nothing say what there is (22 traces stored, none in the last second).
    "lookback-finds-none": (["--lookback", "1"], "No traces in the last 1 s at http://127.0.0.1:"),
    "heatmap-lookback-finds-none": (["--heatmap", "--lookback", "1"], "No traces in the last 1 s at http://127.0.0.1:"),
    "service-unknown": (["--service", "nosuch"], "No service 'nosuch' at http://127.0.0.1:"),
}


@pytest.mark.parametrize("case", sorted(BAD_TRACES_CALLS))
def test_bad_traces_options_say_one_sentence_and_fail(trace_proxy, case):
    args, expected = BAD_TRACES_CALLS[case]
    result = inv("traces", *(args if "--url" in args else ["--url", trace_proxy, *args]))
    assert result.returncode != 0
    message = result.stderr.strip()
    assert message.startswith(expected) and len(message.splitlines()) == 1, message


def test_a_url_that_is_not_zipkin_says_so_instead_of_dumping_its_page():
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)  # any path under /api is a 404 web page
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = inv("traces", "--url", f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
    message = result.stderr.strip()
    assert result.returncode != 0 and "<" not in message and len(message.splitlines()) == 1, message
    assert "is --url a Zipkin API (the trace proxy, port 9411)?" in message


def test_a_request_that_got_no_answer_reads_as_such_not_as_error_0():
    from rich.console import Console

    from meshtools.views.trace_view import render_trace

    spans = echo_trace("ab00000000000001", NOW_US, status="0")
    spans[0]["tags"].update(error="true", response_flags="DC")  # Envoy's record of a client that went away
    console = Console(record=True, width=140, file=open("/dev/null", "w"))
    render_trace(spans, console)
    text = console.export_text()
    assert "ERROR DC" in text and "DC: the client went away before the answer" in text and "ERROR 0" not in text


def test_urls_are_shown_decoded_and_on_one_line():
    # `inv traces` showed /echo/caf%C3%A9; a decoded CR or LF must not break the line either.
    from meshtools.views.trace_view import url_path

    span = {"tags": {"http.url": "http://front/echo/caf%C3%A9%20au%20lait%0D%0Aok?x=%2F"}}
    assert url_path(span) == "/echo/café au lait\\r\\nok?x=/"


def test_empty_filters_count_what_is_stored_and_name_the_services(trace_proxy):
    by_lookback = inv("traces", "--url", trace_proxy, "--lookback", "1").stderr.strip()
    assert by_lookback.endswith("(22 stored); widen the filter or send a request."), by_lookback
    by_service = inv("traces", "--url", trace_proxy, "--service", "nosuch").stderr.strip()
    assert by_service.endswith("; services: front-envoy, service1-1, service1-bd, service2-0, service2-bd."), by_service


def test_a_trace_still_missing_spans_is_labelled_partial():
    from rich.console import Console

    from meshtools.views.trace_view import render_trace

    spans = echo_trace("ab00000000000002", NOW_US)
    console = Console(record=True, width=140, file=open("/dev/null", "w"))
    render_trace(spans[1:], console)  # front-envoy's root span has not arrived
    assert "PARTIAL: its root or a parent span has not arrived" in console.export_text()
    console = Console(record=True, width=140, file=open("/dev/null", "w"))
    render_trace(spans, console)
    assert "PARTIAL" not in console.export_text()
    from meshtools.views.trace_view import render_trace_list

    console = Console(record=True, width=140, file=open("/dev/null", "w"))
    render_trace_list([spans, spans[:4] + spans[5:]], console)  # the second lost a span: listed, labelled
    lines = [line for line in console.export_text().splitlines() if "ab00000000000002" in line]
    assert len(lines) == 2 and "PARTIAL" not in lines[0] and lines[1].rstrip().endswith("PARTIAL")


def test_id_of_a_request_just_answered_waits_for_its_trace_to_settle():
    # `inv echo` prints `inv traces --id X-REQUEST-ID`; run at once, it found nothing: the proxy
    # lists a trace by x-request-id only once settled. Here the settle time outlasts inv's start.
    with running_proxy("--settle", "3") as proxy:
        trace_id = "5e771e0000000001"
        reply = requests.post(f"{proxy.url}/api/v2/spans", json=echo_trace(trace_id, NOW_US), timeout=10)
        assert reply.status_code == 202, reply.text
        result = inv("traces", "--url", proxy.url, "--id", f"req-{trace_id}")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"trace {trace_id} · 12 spans")
        assert "waiting for its spans to reach the trace proxy" in result.stderr
        # A miss while no span comes in is final once the store has been quiet for longer than
        # Envoy holds spans, not after the whole wait.
        started = time.monotonic()
        unknown = inv("traces", "--url", proxy.url, "--id", "no-such-request")
        assert unknown.returncode == 1 and unknown.stderr.startswith("No trace no-such-request")
        assert "waiting" not in unknown.stderr and time.monotonic() - started < 10


def test_id_waits_for_spans_envoy_still_holds():
    # Right after `inv echo` the spans may still sit in Envoy's buffer (sent every 0.2 s, later
    # on a busy machine): the store shows nothing arriving yet. `--id` gave up at once then.
    from meshtools.views.trace_lookup import trace_by_id_or_request_id
    from meshtools.views.zipkin_client import ZipkinClient

    with running_proxy("--settle", "0") as proxy:
        trace_id = "5e771e0000000002"
        post = threading.Timer(1.5, lambda: requests.post(f"{proxy.url}/api/v2/spans",
                                                          json=echo_trace(trace_id, NOW_US), timeout=10))
        post.start()  # the spans' time in Envoy's buffer: what this test is about, not a wait for readiness
        try:
            found = trace_by_id_or_request_id(ZipkinClient(proxy.url), f"req-{trace_id}")
        finally:
            post.join()
        assert len(found) == 12 and {s["traceId"] for s in found} == {trace_id}
