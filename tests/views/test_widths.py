"""Every `inv traces` view at 80 and 200 columns, Zipkin's 64-bit and OpenTelemetry's 128-bit
trace ids, with an error, a request that got no answer and a partial trace among them.

In 80 columns the OpenTelemetry list read `front… ec… /e…`: nothing may be cut that far.
"""
from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from meshtools.views import trace_view
from tests.views.test_traces import NOW_US, echo_trace

ZIPKIN_ID = "463ac35c9f6413ad"
OTEL_ID = "6f343763819630aae7b78bb2e648c273"
WIDTHS = (80, 200)


def traces_of(trace_id: str) -> list[list[dict]]:
    """Four traces: a 200, a 500 at stage 3, one with a request that got no answer, one partial."""
    other = [f"{k}{trace_id[1:]}" for k in "abc"]  # ids differ from their first digit, as random ones do
    ok = echo_trace(trace_id, NOW_US - 4_000_000)
    failed = echo_trace(other[0], NOW_US - 3_000_000, name="chris", status="500", stage_status={3: "500"})
    no_answer = echo_trace(other[1], NOW_US - 2_000_000, status="0")
    no_answer[0]["tags"].update(error="true", response_flags="DC")
    partial = echo_trace(other[2], NOW_US - 1_000_000)
    partial = partial[:4] + partial[5:]  # a service2 span lost
    return [partial, no_answer, failed, ok]


def rendered(width: int, draw) -> list[str]:
    out = io.StringIO()
    draw(Console(file=out, width=width, color_system=None))
    return out.getvalue().splitlines()


def fits(lines: list[str], width: int) -> None:
    wide = [line for line in lines if len(line) > width]
    assert not wide, "\n".join(wide)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("trace_id", [ZIPKIN_ID, OTEL_ID], ids=["zipkin", "opentelemetry"])
def test_the_trace_list_fits_and_keeps_names_urls_and_a_usable_id(width, trace_id):
    found = traces_of(trace_id)
    lines = rendered(width, lambda c: trace_view.render_trace_list(found, c))
    fits(lines, width)
    rows = [line for line in lines if re.match(r"\d\d:\d\d:\d\d", line)]
    assert len(rows) == 4
    for row, spans in zip(rows, found):
        root = trace_view.root_of(spans)
        assert root["traceId"][:16] in row  # what `inv traces --id` takes
        assert " front-envoy " in row and f" {trace_view.url_path(root)} " in row
    assert rows[0].rstrip().endswith(("PARTIAL", "PART"))
    assert "ERROR 500" in rows[2] and "ERROR DC" in rows[1]
    text = "\n".join(lines)
    assert "DC: the client went away before the answer" in text
    if width >= 200:
        assert all(trace_view.root_of(spans)["traceId"] in text for spans in found)  # whole, when there is room
        assert "digits" not in text and " op " in lines[0]


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("trace_id", [ZIPKIN_ID, OTEL_ID], ids=["zipkin", "opentelemetry"])
@pytest.mark.parametrize("which", [0, 1, 2], ids=["partial", "no-answer", "error"])
def test_the_waterfall_fits_and_keeps_names_urls_and_statuses(width, trace_id, which):
    spans = traces_of(trace_id)[which]
    lines = rendered(width, lambda c: trace_view.render_trace(spans, c))
    fits(lines, width)
    text = "\n".join(lines)
    for span in spans:
        assert trace_view.service_of(span) in text
        assert trace_view.url_path(span) in text
    assert "service…" not in text and "/echo/w…" not in text
    assert "◀" in text
    if which == 1:
        assert "ERROR DC" in text and "DC: the client went away before the answer" in text
    if width >= 200:
        assert "◀ slowest" in text and " client " in text


@pytest.mark.parametrize("width", WIDTHS)
def test_breakdown_and_heatmap_fit(width):
    spans = [s for trace in traces_of(OTEL_ID) for s in trace]
    rows = trace_view.breakdown(spans, ["serviceName", "http.url"])
    lines = rendered(width, lambda c: trace_view.render_breakdown(rows, ["serviceName", "http.url"], c))
    fits(lines, width)
    assert any("service2-0" in line and "/stage/3" in line for line in lines)

    def heatmap(console):
        trace_view.render_heatmap(trace_view.heatmap(spans, trace_view.heatmap_columns(console)), console)
    lines = rendered(width, heatmap)
    fits(lines, width)
    plot = [line for line in lines if "│" in line]
    assert len(plot) == 12 and len(plot[0]) >= min(width, 175) - 5  # the plot takes the width there is


def test_the_heatmap_of_a_recent_load_spans_that_load_not_the_mesh_s_lifetime():
    # A recent load filled 2 of 60 columns: a trace from an hour before set the time axis.
    hour_ago = echo_trace("0000000000000bad", NOW_US - 3_600_000_000)
    load = [s for i in range(30) for s in echo_trace(f"{i + 1:016x}", NOW_US - (30 - i) * 2_000_000)]
    recent = trace_view.recent_spans(hour_ago + load, 300)
    assert recent == load
    hm = trace_view.heatmap(recent, columns=60)
    used = {col for row in hm.rows for col, count in enumerate(row) if count}
    assert len(used) >= 50


def test_id_takes_the_start_a_narrow_list_shows():
    import requests

    from tests.support.inv_process import run_inv
    from tests.support.trace_proxy_process import running_proxy

    with running_proxy("--settle", "0") as proxy:
        for trace in traces_of(OTEL_ID):
            assert requests.post(f"{proxy.url}/api/v2/spans", json=trace, timeout=10).status_code == 202
        listed = run_inv("traces", "--url", proxy.url, "--limit", "4", env={"COLUMNS": "80"}, timeout=60)
        assert listed.returncode == 0 and OTEL_ID[:16] in listed.stdout and OTEL_ID not in listed.stdout
        shown = run_inv("traces", "--url", proxy.url, "--id", OTEL_ID[:16], timeout=60)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.startswith(f"trace {OTEL_ID} · 12 spans")


def test_a_narrow_list_shows_as_many_digits_as_tell_its_traces_apart():
    twins = [echo_trace(f"{OTEL_ID[:20]}{k}{OTEL_ID[21:]}", NOW_US - k * 1_000_000) for k in (1, 2)]
    lines = rendered(80, lambda c: trace_view.render_trace_list(twins, c))
    fits(lines, 80)
    assert f"{OTEL_ID[:20]}1 " in "\n".join(lines)  # 20 digits are the same: 21 shown
    assert "its first 21 digits" in "\n".join(lines)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_load_summary_fits(width):
    from collections import Counter

    from meshtools.views.load import LoadConfig, LoadSummary, render_summary

    summary = LoadSummary(LoadConfig(url="http://127.0.0.1:8000", rate=50.0, duration=10.0), elapsed=10.2,
                          errors=Counter({"500": 12, "connection error": 328}), no_answer=328, late_starts=7,
                          in_flight_abandoned=3, sent=843, send_window=10.0)
    for i in range(500):
        summary.histogram.record(0.002 + (i % 50) * 0.07)
    lines = rendered(width, lambda c: render_summary(summary, c))
    fits(lines, width)
    text = " ".join(" ".join(lines).split())
    assert "328 requests got no answer: not in the latencies" in text
    assert "latency of the 500 answered p50" in text and "3 requests unanswered at the end, not counted" in text
