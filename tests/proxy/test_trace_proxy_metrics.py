"""/metrics speaks Prometheus' text format; /metrics.json keeps the same counts as JSON."""
from __future__ import annotations

import secrets

from prometheus_client.parser import text_string_to_metric_families

from tests.support.honeycomb_standin import black_hole
from trace_proxy import create_app
from trace_proxy.settings import Settings


def scrape(client) -> dict[tuple[str, tuple], float]:
    reply = client.get("/metrics")
    assert reply.status_code == 200 and reply.content_type.startswith("text/plain; version=")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(reply.get_data(as_text=True)) for s in family.samples}


def spans(n: int) -> list[dict]:
    trace_id = secrets.token_hex(8)
    return [{"traceId": trace_id, "id": f"{i + 1:016x}", "name": "s"} for i in range(n)]


def test_counters_gauges_and_latency_in_prometheus_text():
    app = create_app(Settings(max_spans=30))
    client = app.test_client()
    for _ in range(3):
        assert client.post("/api/v2/spans", json=spans(20)).status_code == 202
    assert client.post("/api/v2/spans", data=b"{", content_type="application/json").status_code == 400
    assert client.post("/api/v2/spans", json=[{"traceId": "xyz", "id": "1"}]).status_code == 400
    assert client.post("/api/v2/spans", data=b"[]", content_type="text/xml").status_code == 415
    metrics = scrape(client)
    assert metrics[("trace_proxy_received_total", (("what", "requests"),))] == 6
    assert metrics[("trace_proxy_received_total", (("what", "spans"),))] == 60
    rejected = {labels: v for (name, labels), v in metrics.items() if name == "trace_proxy_requests_rejected_total"}
    assert rejected == {(("reason", "malformed"), ("status", "400")): 1, (("reason", "invalid_span"), ("status", "400")): 1,
                        (("reason", "unsupported_media_type"), ("status", "415")): 1}
    # 60 spans into a store of 30: whole traces of 20 leave, oldest first
    assert metrics[("trace_proxy_store_spans", ())] == 20 and metrics[("trace_proxy_store_traces", ())] == 1
    assert metrics[("trace_proxy_store_evicted_spans_total", ())] == 40
    posted = (("method", "POST"), ("route", "/api/v2/spans"), ("status", "202"))
    assert metrics[("trace_proxy_request_duration_seconds_count", posted)] == 3
    assert metrics[("trace_proxy_request_duration_seconds_bucket", (("le", "+Inf"),) + posted)] == 3
    json_view = client.get("/metrics.json").get_json()
    assert json_view["received"] == {"requests": 6, "spans": 60, "by_encoding": {"json_v2": 60}}
    assert metrics[("trace_proxy_spans_received_by_encoding_total", (("encoding", "json_v2"),))] == 60
    assert json_view["rejected"] == {"requests": 3, "by_status": {"400": 2, "415": 1}}


def test_dropped_spans_and_queue_depth_by_sink():
    with black_hole() as url:
        app = create_app(Settings(writekey="not-a-key", api_host=url, honeycomb_backlog=50))
        client = app.test_client()
        assert client.post("/api/v2/spans", json=spans(80)).status_code == 202
        metrics = scrape(client)
        assert metrics[("trace_proxy_spans_dropped_total", (("reason", "backlog_full"), ("sink", "honeycomb")))] == 30
        assert metrics[("trace_proxy_sink_queue_depth", (("sink", "honeycomb"),))] == 50
        assert "not-a-key" not in client.get("/metrics").get_data(as_text=True)
    app.extensions["trace_proxy"].close()  # the black hole is gone: its connections reset
