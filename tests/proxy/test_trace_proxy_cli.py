"""The trace proxy's command line and its local sinks: --help, key handling, --debug,
--downstream, the bounded store."""
from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
import time

import pytest
import requests

from tests.support.honeycomb_standin import honeycomb_standin
from tests.support.trace_proxy_process import running_proxy
from tests.support.trace_proxy_spans import envoy_trace
from tests.support.waiting import wait_for
from trace_proxy.cli import build_parser
from trace_proxy.ingest.zipkin_json import from_v2
from trace_proxy.store.span_store import SpanStore


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trace_proxy", *args], capture_output=True, text=True, timeout=30)


def test_help_documents_every_flag_and_where_the_key_comes_from():
    result = run("--help")
    assert result.returncode == 0
    flags = [opt for action in build_parser()._actions for opt in action.option_strings]
    assert len(flags) > 15
    for flag in flags:
        assert flag in result.stdout, flag
    for action in build_parser()._actions:
        assert action.help and action.help.strip(), action.option_strings
    for word in ("HONEYCOMB_API_KEY", "HONEYCOMB_WRITEKEY", "--writekey-file", "HONEYCOMB_DATASET",
                 "HONEYCOMB_API_HOST", "process listings", "/metrics"):
        assert word in result.stdout


def test_console_script_is_installed():
    script = shutil.which("trace-proxy")
    assert script, "pip install -e . should put trace-proxy on PATH"
    assert "usage: trace-proxy" in subprocess.run([script, "--help"], capture_output=True, text=True, timeout=30).stdout


def test_key_on_the_command_line_is_refused_without_echoing_it():
    result = run("-k", "hcaik_do_not_print_me")
    assert result.returncode == 2
    assert "HONEYCOMB_API_KEY" in result.stderr
    assert "hcaik_do_not_print_me" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args,message", [
    (["--writekey-file", "/nonexistent/key"], "cannot read the write key file"),
    (["--sample-rate", "0"], "must be at least 1"),
    (["--port", "http"], "invalid port"),
])
def test_bad_flags_get_one_clear_sentence(args, message):
    result = run(*args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_debug_prints_each_span_as_a_json_line():
    spans = envoy_trace()
    with running_proxy("--debug") as proxy:
        assert requests.post(f"{proxy.url}/api/v2/spans", json=spans, timeout=5).status_code == 202
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            lines = [json.loads(line) for line in proxy.output().splitlines() if line.startswith("{")]
            if len(lines) >= len(spans):
                break
            time.sleep(0.05)
    assert [line["id"] for line in lines] == [span["id"] for span in spans]


def test_downstream_receives_each_body_unchanged_at_the_same_version_path():
    v2_body = gzip.compress(json.dumps(envoy_trace()).encode())
    v1_body = json.dumps([{"traceId": "00000000000000aa", "id": "00000000000000bb", "name": "v1"}]).encode()
    with honeycomb_standin() as collector, running_proxy("--downstream", collector.url) as proxy:
        requests.post(f"{proxy.url}/api/v2/spans", data=v2_body, timeout=5,
                      headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
        requests.post(f"{proxy.url}/api/v1/spans", data=v1_body, headers={"Content-Type": "application/json"}, timeout=5)
        got = collector.wait_for(lambda reqs: reqs if len(reqs) >= 2 else None, "two mirrored bodies")

        def counted():
            # The stand-in records a body before the proxy has read its reply and counted it.
            snapshot = requests.get(f"{proxy.url}/metrics.json", timeout=5).json()
            return snapshot if snapshot["forwarded"].get("downstream", 0) >= 13 else None

        metrics = wait_for(counted, 10, "both mirrored bodies counted as forwarded")
    by_path = {r.path: r for r in got}
    assert by_path["/api/v2/spans"].raw == v2_body
    assert by_path["/api/v2/spans"].headers["Content-Encoding"] == "gzip"
    assert by_path["/api/v1/spans"].raw == v1_body
    assert metrics["forwarded"]["downstream"] == 13


def test_store_drops_oldest_whole_traces_beyond_its_span_limit():
    store = SpanStore(max_spans=30)
    traces = [envoy_trace() for _ in range(4)]
    for trace in traces:
        store.add([from_v2(span) for span in trace])
    stats = store.stats()
    assert 0 < stats.pop("bytes") < 24 * 1000
    assert stats == {"spans": 24, "traces": 2, "evicted_spans": 24, "late_spans_dropped": 0}
    assert store.trace(traces[0][0]["traceId"]) is None
    assert len(store.trace(traces[3][0]["traceId"])) == 12


def test_store_never_keeps_a_fragment_of_an_evicted_trace_and_counts_late_spans():
    store = SpanStore(max_spans=30)
    first, second, third = (envoy_trace() for _ in range(3))
    store.add([from_v2(span) for span in first + second + third])  # 36 spans: `first` goes
    late = dict(first[-1], id="00000000000000ff")
    store.add([from_v2(late)])
    assert store.trace(first[0]["traceId"]) is None
    assert store.stats()["late_spans_dropped"] == 1
    assert store.stats()["spans"] == 24


def test_store_evicts_the_least_recently_active_trace_not_one_still_filling():
    store = SpanStore(max_spans=30)
    filling, idle, newest = (envoy_trace() for _ in range(3))
    store.add([from_v2(span) for span in filling[:6]])  # the first half of a slow request
    store.add([from_v2(span) for span in idle])
    store.add([from_v2(span) for span in filling[6:]])  # its second half arrives later
    store.add([from_v2(span) for span in newest])
    assert store.trace(idle[0]["traceId"]) is None
    assert len(store.trace(filling[0]["traceId"])) == 12


def test_sigterm_stops_the_proxy_cleanly():
    with running_proxy() as proxy:
        proxy.process.terminate()
        assert proxy.process.wait(timeout=15) == 0


def test_a_spool_folder_it_cannot_write_is_refused_at_start_in_one_line(tmp_path):
    """Without a key too: a spool that cannot be written would lose spans at the first outage."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = run("--port", "1", "--spool-dir", str(blocker / "spool"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"trace-proxy: error: --spool-dir {blocker / 'spool'}: ")
