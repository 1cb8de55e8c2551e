"""OTLP spans reach Honeycomb in the same event shape as Zipkin spans: one dataset, the same
queries (BREAK DOWN by serviceName, HEATMAP(durationMs)); resource attributes are fields and
the honeycomb.dataset / honeycomb.samplerate conventions apply."""
from __future__ import annotations

import secrets
import time

import pytest
import requests
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.proxy.test_otlp_ingest import PB, request_of, span
from tests.support import otel_client
from tests.support.honeycomb_standin import honeycomb_standin
from tests.support.trace_proxy_process import running_proxy

KEY = "hcaik_standin_" + secrets.token_hex(8)
DATASET = "otlp-dataset"
# What every event carries, whichever way its span came in (the seed's queries use these).
CORE = {"traceId", "id", "name", "serviceName", "durationMs", "kind", "trace.trace_id", "trace.span_id",
        "service.name", "duration_ms"}


@pytest.fixture(scope="module")
def standin():
    with honeycomb_standin() as server:
        yield server


@pytest.fixture(scope="module")
def proxy(standin):
    env = {"HONEYCOMB_API_KEY": KEY, "HONEYCOMB_API_HOST": standin.url, "HONEYCOMB_DATASET": DATASET}
    with running_proxy(env=env) as running:
        yield running


def _events(standin, trace_id: str, count: int) -> list[dict]:
    batches = standin.wait_for_trace(trace_id, count)
    return [e for b in batches for e in b.events if e["data"].get("traceId") == trace_id]


def test_sdk_spans_arrive_as_zipkin_shaped_events_with_resource_fields(standin, proxy):
    sent = otel_client.send_protobuf(f"{proxy.url}/v1/traces")
    events = {e["data"]["id"]: e for e in _events(standin, sent.trace_id, 3)}
    root, client = events[sent.root]["data"], events[sent.client]["data"]
    assert CORE <= set(root) and (CORE - {"kind"}) <= set(events[sent.internal]["data"])
    assert (root["serviceName"], root["kind"], root["durationMs"]) == (otel_client.SERVICE, "SERVER", 250.0)
    assert client["parentId"] == sent.root and client["trace.parent_id"] == sent.root
    assert root["deployment.environment"] == "test" and root["telemetry.sdk.language"] == "python"
    assert root["http.response.status_code"] == 200  # an int attribute arrives as a number
    assert events[sent.root]["time"] == "2023-11-14T22:13:20Z"
    assert {e["samplerate"] for e in events.values()} == {1}
    assert {b.dataset for b in standin.requests if any(e["data"]["traceId"] == sent.trace_id for e in b.events)} == \
        {DATASET}
    for batch in standin.requests:
        assert batch.headers["X-Honeycomb-Team"] == KEY


def test_otlp_and_zipkin_spans_make_the_same_fields(standin, proxy):
    trace_id = secrets.token_bytes(16)
    otlp = request_of(span(trace_id, b"\x05" * 8, kind=2, attributes=[
        KeyValue(key="http.status_code", value=AnyValue(string_value="200"))]), service="front-envoy")
    assert requests.post(f"{proxy.url}/v1/traces", data=otlp.SerializeToString(), headers=PB, timeout=5).ok
    zipkin_id = secrets.token_hex(16)
    zipkin = [{"traceId": zipkin_id, "id": "0505050505050505", "name": "op", "kind": "SERVER",
               "timestamp": 1_700_000_000_000_000, "duration": 1000, "localEndpoint": {"serviceName": "front-envoy"},
               "tags": {"http.status_code": "200"}}]
    assert requests.post(f"{proxy.url}/api/v2/spans", json=zipkin, timeout=5).status_code == 202
    (from_otlp,) = _events(standin, trace_id.hex(), 1)
    (from_zipkin,) = _events(standin, zipkin_id, 1)
    otlp_fields = {k: v for k, v in from_otlp["data"].items() if k not in ("traceId", "trace.trace_id")}
    zipkin_fields = {k: v for k, v in from_zipkin["data"].items() if k not in ("traceId", "trace.trace_id")}
    assert otlp_fields == zipkin_fields
    assert from_otlp["time"] == from_zipkin["time"]


def test_honeycomb_dataset_and_samplerate_attributes_steer_otlp_events(standin, proxy):
    trace_id = secrets.token_bytes(16)
    request = request_of(span(trace_id, b"\x07" * 8, attributes=[
        KeyValue(key="honeycomb.samplerate", value=AnyValue(int_value=20))]))
    request.resource_spans[0].resource.attributes.append(
        KeyValue(key="honeycomb.dataset", value=AnyValue(string_value="routed-otlp")))
    assert requests.post(f"{proxy.url}/v1/traces", data=request.SerializeToString(), headers=PB, timeout=5).ok
    batches = standin.wait_for_trace(trace_id.hex(), 1)
    (event,) = [e for b in batches for e in b.events if e["data"]["traceId"] == trace_id.hex()]
    assert {b.dataset for b in batches} == {"routed-otlp"}
    assert event["samplerate"] == 20
    assert not {"honeycomb.dataset", "honeycomb.samplerate"} & set(event["data"])


def test_typed_otlp_attributes_reach_honeycomb_typed(standin, proxy):
    """Zipkin keeps tags as strings; Honeycomb gets numbers as numbers, booleans as booleans,
    the span's attributes and its resource's alike."""
    trace_id = secrets.token_bytes(16)
    otlp = request_of(span(trace_id, b"\x09" * 8, attributes=[
        KeyValue(key="http.status_code", value=AnyValue(int_value=503)),
        KeyValue(key="ratio", value=AnyValue(double_value=0.25)),
        KeyValue(key="cache.hit", value=AnyValue(bool_value=True)),
        KeyValue(key="route", value=AnyValue(string_value="/api"))]), service="typed")
    otlp.resource_spans[0].resource.attributes.append(KeyValue(key="process.pid", value=AnyValue(int_value=4242)))
    assert requests.post(f"{proxy.url}/v1/traces", data=otlp.SerializeToString(), headers=PB, timeout=5).ok
    (event,) = _events(standin, trace_id.hex(), 1)
    data = event["data"]
    assert (data["http.status_code"], data["ratio"], data["cache.hit"], data["route"]) == (503, 0.25, True, "/api")
    assert data["process.pid"] == 4242  # a resource attribute too
    stored = requests.get(f"{proxy.url}/api/v2/trace/{trace_id.hex()}", timeout=5).json()[0]["tags"]
    assert (stored["http.status_code"], stored["ratio"], stored["cache.hit"]) == ("503", "0.25", "true")


def test_span_events_and_links_reach_honeycomb_as_its_own_otlp_ingest_sends_them(standin, proxy):
    """Each span event and link is an event of its own, tied to its span (trace.parent_id,
    parent_name, meta.annotation_type), so Honeycomb's trace view shows them on the span."""
    from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

    trace_id, linked = secrets.token_bytes(16), secrets.token_bytes(16)
    before = _annotations_forwarded(proxy)
    otlp = request_of(span(trace_id, b"\x0a" * 8, name="checkout", status=Status(code=Status.STATUS_CODE_ERROR),
                           events=[Span.Event(time_unix_nano=1_700_000_000_000_500_000, name="retry", attributes=[
                               KeyValue(key="attempt", value=AnyValue(int_value=2))])],
                           links=[Span.Link(trace_id=linked, span_id=b"\x0b" * 8, attributes=[
                               KeyValue(key="sampled", value=AnyValue(bool_value=True))])]), service="shop")
    assert requests.post(f"{proxy.url}/v1/traces", data=otlp.SerializeToString(), headers=PB, timeout=5).ok
    batches = standin.wait_for_trace(trace_id.hex(), 1)
    events = [e for b in batches for e in b.events if e["data"]["trace.trace_id"] == trace_id.hex()]
    by_type = {e["data"].get("meta.annotation_type"): e for e in events}
    assert len(events) == 3 and set(by_type) == {None, "span_event", "link"}
    shared = {"trace.trace_id": trace_id.hex(), "trace.parent_id": "0a" * 8, "parent_name": "checkout",
              "service.name": "shop", "error": True}
    retry, link = by_type["span_event"], by_type["link"]
    assert shared.items() <= retry["data"].items() and shared.items() <= link["data"].items()
    assert (retry["data"]["name"], retry["data"]["attempt"], retry["time"]) == \
        ("retry", 2, "2023-11-14T22:13:20.000500Z")
    assert (link["data"]["trace.link.trace_id"], link["data"]["trace.link.span_id"], link["data"]["sampled"]) == \
        (linked.hex(), "0b" * 8, True)
    assert link["time"] == by_type[None]["time"]  # a link has no time of its own: its span's start
    deadline = time.monotonic() + 5  # counted once Honeycomb's answer is read, just after it arrived
    while _annotations_forwarded(proxy) - before < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _annotations_forwarded(proxy) - before == 2  # counted apart from the spans


def _annotations_forwarded(proxy) -> float:
    metrics = requests.get(f"{proxy.url}/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith("trace_proxy_span_annotations_total{") and 'outcome="forwarded"' in line)
