"""Spans read exactly as Zipkin reads them (issue 21, items 11-16): v1 → v2 by Zipkin's
V1SpanConverter rules, v2 normalised by its Span and Endpoint rules, OTLP mapped by the
OpenTelemetry spec's Zipkin rules. Each case is the input the behaviour was described for,
checked through the proxy's HTTP API."""
from __future__ import annotations

import json
import secrets

import pytest

from trace_proxy import create_app
from trace_proxy.settings import Settings

JSON = {"Content-Type": "application/json"}
T = 1_700_000_000_000_000


@pytest.fixture
def client():
    app = create_app(Settings(settle_seconds=0))
    yield app.test_client()
    app.extensions["trace_proxy"].close()


def ep(service: str, ip: str = "10.0.0.1") -> dict:
    return {"serviceName": service, "ipv4": ip}


def stored(client, version: int, spans: list[dict]) -> list[dict]:
    reply = client.post(f"/api/v{version}/spans", data=json.dumps(spans), headers=JSON)
    assert reply.status_code == 202, reply.data
    trace = client.get(f"/api/v2/trace/{spans[0]['traceId'].lstrip('0').rjust(16, '0')}").get_json()
    return sorted(trace, key=lambda s: (s.get("kind", ""), s.get("localEndpoint", {}).get("serviceName", "")))


def v1(trace_id: str, **fields) -> dict:
    return {"traceId": trace_id, "id": "0000000000000002", "parentId": "0000000000000001", "name": "get", **fields}


# -- 11: a v1 server span without timestamp is the shared half ------------------------------
def test_a_py_zipkin_style_server_span_stays_shared_and_counts_once_in_dependencies(client):
    trace_id = secrets.token_hex(8)
    client_span = v1(trace_id, timestamp=T, duration=100,
                     annotations=[{"timestamp": T, "value": "cs", "endpoint": ep("caller")},
                                  {"timestamp": T + 100, "value": "cr", "endpoint": ep("caller")}])
    server_span = v1(trace_id, annotations=[{"timestamp": T + 10, "value": "sr", "endpoint": ep("callee")},
                                            {"timestamp": T + 90, "value": "ss", "endpoint": ep("callee")}])
    root = {"traceId": trace_id, "id": "0000000000000001", "name": "root", "timestamp": T, "duration": 200,
            "annotations": [{"timestamp": T, "value": "sr", "endpoint": ep("caller")},
                            {"timestamp": T + 200, "value": "ss", "endpoint": ep("caller")}]}
    spans = stored(client, 1, [client_span, server_span, root])
    server = [s for s in spans if s["id"] == "0000000000000002" and s["kind"] == "SERVER"]
    assert server == [{"traceId": trace_id, "id": "0000000000000002", "parentId": "0000000000000001", "name": "get",
                       "kind": "SERVER", "timestamp": T + 10, "duration": 80, "localEndpoint": ep("callee"),
                       "shared": True}]
    links = client.get("/api/v2/dependencies", query_string={"endTs": T // 1000 + 1000, "lookback": 10_000}).get_json()
    assert links == [{"parent": "caller", "child": "callee", "callCount": 1, "errorCount": 0}]


# -- 12: all-zero ids ---------------------------------------------------------------------
@pytest.mark.parametrize("field", ["traceId", "id"])
@pytest.mark.parametrize("version", [1, 2])
def test_all_zero_trace_and_span_ids_are_refused(client, field, version):
    span = {"traceId": secrets.token_hex(8), "id": secrets.token_hex(8), "name": "x", field: "0" * 16}
    reply = client.post(f"/api/v{version}/spans", data=json.dumps([span]), headers=JSON)
    assert reply.status_code == 400 and b"all zeros" in reply.data


def test_an_all_zero_parent_id_is_a_root(client):
    trace_id = secrets.token_hex(8)
    [span] = stored(client, 2, [{"traceId": trace_id, "id": secrets.token_hex(8), "parentId": "0" * 16, "name": "r",
                                 "timestamp": T, "duration": 5, "localEndpoint": {"serviceName": "svc"}}])
    assert "parentId" not in span
    listed = client.get("/api/v2/traces", query_string={"endTs": T // 1000 + 1000, "lookback": 10_000}).get_json()
    assert [t[0]["traceId"] for t in listed] == [trace_id]  # whole at once, not hidden as rootless


# -- 13: a v1 span with both sides --------------------------------------------------------
def test_a_v1_span_with_cs_sr_ss_cr_becomes_a_client_and_a_shared_server_span(client):
    trace_id = secrets.token_hex(8)
    span = v1(trace_id, timestamp=T, duration=100,
              annotations=[{"timestamp": T, "value": "cs", "endpoint": ep("frontend")},
                           {"timestamp": T + 10, "value": "sr", "endpoint": ep("backend", "10.0.0.2")},
                           {"timestamp": T + 90, "value": "ss", "endpoint": ep("backend", "10.0.0.2")},
                           {"timestamp": T + 100, "value": "cr", "endpoint": ep("frontend")}],
              binaryAnnotations=[{"key": "http.path", "value": "/api", "endpoint": ep("frontend")},
                                 {"key": "sa", "value": True, "endpoint": ep("backend", "10.0.0.2")}])
    client_span, server_span = stored(client, 1, [span])
    base = {"traceId": trace_id, "id": "0000000000000002", "parentId": "0000000000000001", "name": "get"}
    assert client_span == {**base, "kind": "CLIENT", "timestamp": T, "duration": 100, "localEndpoint": ep("frontend"),
                           "remoteEndpoint": ep("backend", "10.0.0.2"), "tags": {"http.path": "/api"}}
    assert server_span == {**base, "kind": "SERVER", "timestamp": T + 10, "duration": 80,
                           "localEndpoint": ep("backend", "10.0.0.2"), "shared": True}


def test_core_annotations_without_an_endpoint_are_plain_annotations(client):
    trace_id = secrets.token_hex(8)
    [span] = stored(client, 1, [v1(trace_id, timestamp=T, duration=50,
                                   annotations=[{"timestamp": T, "value": "cs"}, {"timestamp": T + 50, "value": "cr"}])])
    assert "kind" not in span
    assert span["annotations"] == [{"timestamp": T, "value": "cs"}, {"timestamp": T + 50, "value": "cr"}]


def test_ws_wr_without_ms_mr_and_a_lone_cr_stay_annotations(client):
    trace_id = secrets.token_hex(8)
    [span] = stored(client, 1, [v1(trace_id, annotations=[
        {"timestamp": T + 1, "value": "ws", "endpoint": ep("svc")},
        {"timestamp": T + 2, "value": "wr", "endpoint": ep("svc")},
        {"timestamp": T + 3, "value": "cr", "endpoint": ep("svc")}])])
    assert span["kind"] == "CLIENT"
    assert span["annotations"] == [{"timestamp": T + 1, "value": "ws"}, {"timestamp": T + 2, "value": "wr"},
                                   {"timestamp": T + 3, "value": "cr"}]


# -- 14: typed binary annotations ---------------------------------------------------------
def test_only_string_binary_annotations_become_tags_and_an_empty_lc_goes(client):
    trace_id = secrets.token_hex(8)
    [span] = stored(client, 1, [v1(trace_id, timestamp=T, duration=5, binaryAnnotations=[
        {"key": "lc", "value": "", "endpoint": ep("svc")},
        {"key": "s", "value": "text", "endpoint": ep("svc")},
        {"key": "n", "value": 42, "type": "I32", "endpoint": ep("svc")},
        {"key": "b", "value": True, "type": "BOOL", "endpoint": ep("svc")}])])
    assert span["tags"] == {"s": "text"} and span["localEndpoint"] == ep("svc")


# -- 15: v2 normalisation ------------------------------------------------------------------
def v2(**fields) -> dict:
    return {"traceId": secrets.token_hex(8), "id": "00000000000000a1", "name": "op", "timestamp": T, "duration": 5,
            "localEndpoint": {"serviceName": "svc"}, **fields}


def test_an_unknown_kind_is_refused(client):
    reply = client.post("/api/v2/spans", data=json.dumps([v2(kind="AAA")]), headers=JSON)
    assert reply.status_code == 400 and b"kind must be one of" in reply.data


def test_annotations_sorted_and_deduplicated_parent_is_not_self_shared_client_dropped(client):
    span = v2(kind="CLIENT", shared=True, parentId="00000000000000a1",
              annotations=[{"timestamp": T + 2, "value": "b"}, {"timestamp": T + 1, "value": "a"},
                           {"timestamp": T + 2, "value": "b"}])
    [kept] = stored(client, 2, [span])
    assert kept["annotations"] == [{"timestamp": T + 1, "value": "a"}, {"timestamp": T + 2, "value": "b"}]
    assert "parentId" not in kept and "shared" not in kept


@pytest.mark.parametrize("given, expected", [
    ({"ipv4": "not-an-ip"}, {}),
    ({"ipv6": "2001:DB8:0:0::2"}, {"ipv6": "2001:db8::2"}),
    ({"ipv6": "::ffff:10.1.2.3"}, {"ipv4": "10.1.2.3"}),
    ({"ipv4": "10.1.2.3", "ipv6": "::1"}, {"ipv4": "10.1.2.3", "ipv6": "::1"}),
])
def test_addresses_read_as_zipkin_writes_them(client, given, expected):
    [kept] = stored(client, 2, [v2(localEndpoint={"serviceName": "svc", **given})])
    assert kept["localEndpoint"] == {"serviceName": "svc", **expected}


def test_json_and_protobuf_give_the_same_ipv6(client):
    from trace_proxy.ingest.zipkin_proto import encode_spans

    span = v2(remoteEndpoint={"ipv6": "2001:DB8:0:0::2"})
    from_json = stored(client, 2, [span])
    proto_span = {**span, "traceId": secrets.token_hex(8), "remoteEndpoint": {"ipv6": "2001:db8::2"}}
    reply = client.post("/api/v2/spans", data=encode_spans([proto_span]), headers={"Content-Type": "application/x-protobuf"})
    assert reply.status_code == 202
    [from_proto] = client.get(f"/api/v2/trace/{proto_span['traceId']}").get_json()
    assert from_json[0]["remoteEndpoint"] == from_proto["remoteEndpoint"] == {"ipv6": "2001:db8::2"}


def test_a_negative_timestamp_or_duration_is_absent_as_zipkin_reads_it(client):
    """Zipkin's Span.Builder reads a negative timestamp or duration as unset (0); found by
    schemathesis (the spec's int64 allows them): the proxy refused the whole request."""
    [kept] = stored(client, 2, [v2(timestamp=-1, duration=-(2**63))])
    assert "timestamp" not in kept and "duration" not in kept


@pytest.mark.parametrize("path, name", [("autocompleteValues", "key"), ("spans", "serviceName")])
def test_an_empty_key_or_service_name_has_no_values(client, path, name):
    """The spec's parameters are any string: Zipkin answers an empty one with [], not 400
    (found by schemathesis); a missing one is still 400."""
    stored(client, 2, [v2()])
    reply = client.get(f"/api/v2/{path}?{name}=")
    assert (reply.status_code, reply.get_json()) == (200, [])
    assert client.get(f"/api/v2/{path}").status_code == 400


# -- 16: OTLP → Zipkin per the OpenTelemetry spec ---------------------------------------------
def otlp_stored(client, **span_fields) -> dict:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    trace_id = secrets.token_bytes(16)
    span = Span(trace_id=trace_id, span_id=secrets.token_bytes(8), name="op", start_time_unix_nano=T * 1000,
                end_time_unix_nano=T * 1000 + 5000, **span_fields)
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])])
    reply = client.post("/v1/traces", data=request.SerializeToString(), headers={"Content-Type": "application/x-protobuf"})
    assert reply.status_code == 200
    [kept] = client.get(f"/api/v2/trace/{trace_id.hex()}").get_json()
    return kept


def kv(key: str, **value):
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    return KeyValue(key=key, value=AnyValue(**value))


def test_otlp_error_status_without_description_is_an_empty_error_tag(client):
    from opentelemetry.proto.trace.v1.trace_pb2 import Status

    kept = otlp_stored(client, status=Status(code=Status.STATUS_CODE_ERROR))
    assert kept["tags"]["error"] == "" and kept["tags"]["otel.status_code"] == "ERROR"


def test_otlp_error_false_is_no_error(client):
    kept = otlp_stored(client, attributes=[kv("error", bool_value=False)])
    assert "error" not in kept.get("tags", {})


def test_otlp_dropped_counts_become_tags(client):
    kept = otlp_stored(client, dropped_attributes_count=3, dropped_events_count=2, dropped_links_count=1)
    assert {k: v for k, v in kept["tags"].items() if k.startswith("otel.dropped")} == {
        "otel.dropped_attributes_count": "3", "otel.dropped_events_count": "2", "otel.dropped_links_count": "1"}


def test_otlp_client_remote_endpoint_from_the_ranked_attributes(client):
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    kept = otlp_stored(client, kind=Span.SPAN_KIND_CLIENT,
                       attributes=[kv("server.address", string_value="db.internal"),
                                   kv("network.peer.address", string_value="10.0.0.7"),
                                   kv("network.peer.port", int_value=5432)])
    assert kept["remoteEndpoint"] == {"serviceName": "db.internal", "ipv4": "10.0.0.7", "port": 5432}


def array(*values: dict):
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue

    return ArrayValue(values=[AnyValue(**value) for value in values])


@pytest.mark.parametrize("number, tag", [
    (1e20, "100000000000000000000"), (1e21, "1e+21"), (2.0, "2"), (0.25, "0.25"), (-1.5e-7, "-1.5e-7"),
    (float("nan"), "NaN"), (float("inf"), "Infinity"), (float("-inf"), "-Infinity")])
def test_otlp_doubles_are_tags_as_the_spec_writes_them(client, number, tag):
    """common/README.md, AnyValue for non-OTLP protocols: JSON numbers, NaN and ±Infinity by
    name; inside an array or map the special ones are JSON strings, an empty value null."""
    kept = otlp_stored(client, attributes=[
        kv("x", double_value=number),
        kv("xs", array_value=array({"double_value": number}, {"int_value": 3}, {}, {"bool_value": True}))],
        events=[_event("retry", kv("backoff", double_value=number))])
    inner = tag if tag[-1].isdigit() else f'"{tag}"'
    assert kept["tags"]["x"] == tag
    assert kept["tags"]["xs"] == f"[{inner},3,null,true]"
    assert kept["annotations"][0]["value"] == f'"retry": {{"backoff":{inner}}}'


def _event(name: str, *attributes):
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    return Span.Event(time_unix_nano=T * 1000 + 1000, name=name, attributes=list(attributes))
