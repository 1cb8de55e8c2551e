"""OTLP/HTTP ingest: a real OpenTelemetry SDK's spans come back through the Zipkin API, bad
input gets the 4xx and google.rpc.Status the OTLP specification prescribes, nothing accepted
is lost, and fuzzed bodies never break the proxy."""
from __future__ import annotations

import gzip
import json
import secrets

import pytest
import requests
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2
from hypothesis import HealthCheck, given, settings, strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from meshtools.shared.net import free_port
from tests.support import otel_client
from tests.support.trace_proxy_process import running_proxy
from trace_proxy import create_app
from trace_proxy.settings import Settings

LIMIT = 64 * 1024
PB = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def live():
    otlp_port = free_port()
    with running_proxy("--max-body-bytes", str(LIMIT), "--otlp-port", str(otlp_port)) as running:
        running.otlp_url = f"http://127.0.0.1:{otlp_port}"
        yield running


@pytest.fixture(scope="module")
def app():
    return create_app(Settings(max_body_bytes=LIMIT))


def zipkin_trace(url: str, trace_id: str) -> dict[str, dict]:
    reply = requests.get(f"{url}/api/v2/trace/{trace_id}", timeout=5)
    assert reply.status_code == 200, reply.text
    return {span["id"]: span for span in reply.json()}


def assert_sdk_trace(spans: dict[str, dict], sent: otel_client.SdkTrace) -> None:
    assert set(spans) == {sent.root, sent.client, sent.internal}
    root, client, internal = spans[sent.root], spans[sent.client], spans[sent.internal]
    assert {s["traceId"] for s in spans.values()} == {sent.trace_id}
    assert "parentId" not in root and client["parentId"] == internal["parentId"] == sent.root
    assert (root["kind"], client["kind"]) == ("SERVER", "CLIENT") and "kind" not in internal  # INTERNAL: no Zipkin kind
    # The store keeps span names lower-cased, as Zipkin does ("GET /cart" was sent).
    assert (root["name"], client["name"], internal["name"]) == ("get /cart", "get /price", "compute total")
    start_us = otel_client.START_NS // 1000
    assert (root["timestamp"], root["duration"]) == (start_us, 250_000)
    assert (client["timestamp"], client["duration"]) == (start_us + 10_000, 120_000)
    assert internal["duration"] == 30_000
    for span in spans.values():
        assert span["localEndpoint"] == {"serviceName": otel_client.SERVICE}
        # resource attributes and the instrumentation scope travel as tags
        assert span["tags"]["deployment.environment"] == "test"
        assert span["tags"]["otel.scope.name"] == "tests.otel_client" and span["tags"]["otel.scope.version"] == "1.2.3"
    tags = root["tags"]
    assert (tags["http.request.method"], tags["http.response.status_code"], tags["cart.items"]) == ("GET", "200", "3")
    assert (tags["cart.total"], tags["cart.gift"], tags["cart.skus"]) == ("12.5", "true", '["a1","b2"]')
    assert "error" not in tags
    assert client["remoteEndpoint"] == {"serviceName": "pricing"}
    assert client["annotations"] == [{"timestamp": start_us + 60_000, "value": '"retry": {"attempt":2}'}]
    assert internal["tags"]["error"] == "rounding failed" and internal["tags"]["otel.status_code"] == "ERROR"


@pytest.mark.parametrize("port", ["zipkin", "otlp"])
@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_the_sdk_exporter_spans_come_back_through_the_zipkin_api(live, port, gzipped):
    base = live.url if port == "zipkin" else live.otlp_url
    sent = otel_client.send_protobuf(f"{base}/v1/traces", gzip=gzipped)
    assert_sdk_trace(zipkin_trace(live.url, sent.trace_id), sent)
    services = requests.get(f"{live.url}/api/v2/services", timeout=5).json()
    assert otel_client.SERVICE in services


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_otlp_json_bodies_are_stored_like_protobuf_ones(live, gzipped):
    sent, body = otel_client.json_body()
    headers = dict(JSON)
    if gzipped:
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    reply = requests.post(f"{live.otlp_url}/v1/traces", data=body, headers=headers, timeout=5)
    assert reply.status_code == 200 and reply.headers["Content-Type"] == "application/json"
    assert reply.json() == {}  # full success: partialSuccess left unset, as the spec requires
    assert_sdk_trace(zipkin_trace(live.url, sent.trace_id), sent)


def test_a_protobuf_success_is_an_empty_export_response(live):
    reply = requests.post(f"{live.url}/v1/traces", data=b"", headers=PB, timeout=5)
    assert reply.status_code == 200 and reply.headers["Content-Type"] == "application/x-protobuf"
    response = ExportTraceServiceResponse.FromString(reply.content)
    assert not response.HasField("partial_success")


# -- bad input ------------------------------------------------------------------------------

def span(trace_id: bytes = b"\x01" * 16, span_id: bytes = b"\x02" * 8, **fields) -> Span:
    return Span(trace_id=trace_id, span_id=span_id, name=fields.pop("name", "op"),
                start_time_unix_nano=1_700_000_000_000_000_000, end_time_unix_nano=1_700_000_000_001_000_000, **fields)


def request_of(*spans: Span, service: str = "svc") -> ExportTraceServiceRequest:
    resource_spans = ResourceSpans(scope_spans=[ScopeSpans(spans=list(spans))])
    resource_spans.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value=service)))
    return ExportTraceServiceRequest(resource_spans=[resource_spans])


def good_request() -> tuple[str, bytes]:
    trace_id = secrets.token_bytes(16)
    return trace_id.hex(), request_of(span(trace_id, secrets.token_bytes(8))).SerializeToString()


HUGE = request_of(span(attributes=[KeyValue(key="blob", value=AnyValue(string_value="x" * (LIMIT + 1)))]))
BAD_REQUESTS = [
    # (description, body, headers, status, reason fragment)
    ("truncated protobuf", good_request()[1][:-7], PB, 400, "not a valid OTLP protobuf"),
    ("garbage protobuf", b"\xff\xff\xff\xff", PB, 400, "not a valid OTLP protobuf"),
    ("wrong content type", good_request()[1], {"Content-Type": "text/plain"}, 415, "Content-Type"),
    ("no content type", good_request()[1], {}, 415, "Content-Type"),
    ("zipkin json at the otlp path", b'[{"traceId": "1", "id": "1"}]', JSON, 400, "JSON object"),
    ("not json", b'{"resourceSpans": [', JSON, 400, "not valid JSON"),
    ("json id not hex", b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz", "spanId": "01"}]}]}]}',
     JSON, 400, "not hex"),
    ("json wrong type", b'{"resourceSpans": {"a": 1}}', JSON, 400, "not a valid OTLP JSON"),
    ("short trace id", request_of(span(trace_id=b"\x01" * 8)).SerializeToString(), PB, 400, "traceId must be 16 bytes"),
    ("zero span id", request_of(span(span_id=bytes(8))).SerializeToString(), PB, 400, "spanId must not be all zeros"),
    ("long parent id", request_of(span(parent_span_id=b"\x03" * 9)).SerializeToString(), PB, 400, "parentSpanId"),
    ("brotli", good_request()[1], {**PB, "Content-Encoding": "br"}, 415, "Content-Encoding"),
    ("not gzip", good_request()[1], {**PB, "Content-Encoding": "gzip"}, 400, "gzip"),
    ("gzip bomb", gzip.compress(b"\x00" * (LIMIT * 200)), {**PB, "Content-Encoding": "gzip"}, 413, "decompressed"),
    ("huge attribute", HUGE.SerializeToString(), PB, 413, "larger than"),
    ("huge gzipped attribute", gzip.compress(HUGE.SerializeToString()), {**PB, "Content-Encoding": "gzip"}, 413,
     "decompressed"),
]


def status_of(reply: requests.Response) -> status_pb2.Status:
    if reply.headers["Content-Type"] == "application/json":
        return json_format.Parse(reply.text, status_pb2.Status())
    assert reply.headers["Content-Type"] == "application/x-protobuf"
    return status_pb2.Status.FromString(reply.content)


@pytest.mark.parametrize("body,headers,status,reason", [c[1:] for c in BAD_REQUESTS], ids=[c[0] for c in BAD_REQUESTS])
def test_bad_input_gets_the_otlp_status_and_loses_nothing_else(live, body, headers, status, reason):
    kept_id, kept = good_request()
    assert requests.post(f"{live.url}/v1/traces", data=kept, headers=PB, timeout=5).status_code == 200
    reply = requests.post(f"{live.otlp_url}/v1/traces", data=body, headers=headers, timeout=10)
    assert reply.status_code == status, reply.content
    # The body is a google.rpc.Status, encoded like the request (protobuf when its type is unusable).
    assert reply.headers["Content-Type"] == ("application/json" if headers.get("Content-Type") == "application/json"
                                             else "application/x-protobuf")
    assert reason in status_of(reply).message
    assert len(zipkin_trace(live.url, kept_id)) == 1
    assert requests.get(f"{live.url}/healthz", timeout=5).ok and live.process.poll() is None


def test_invalid_ids_are_listed_in_a_bad_request_detail(live):
    body = request_of(span(trace_id=bytes(16)), span(span_id=b"\x01")).SerializeToString()
    reply = requests.post(f"{live.url}/v1/traces", data=body, headers=PB, timeout=5)
    assert reply.status_code == 400
    (detail,) = status_of(reply).details
    bad = error_details_pb2.BadRequest()
    assert detail.Unpack(bad)
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("resourceSpans[0].scopeSpans[0].spans[0].traceId", "traceId must not be all zeros"),
        ("resourceSpans[0].scopeSpans[0].spans[1].spanId", "spanId must be 8 bytes (16 hex characters), got 1"),
    ]


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_partly_invalid_requests_keep_the_valid_spans_and_say_what_was_refused(live, encoding):
    trace_id = secrets.token_bytes(16)
    good = [span(trace_id, secrets.token_bytes(8), name=f"ok {i}") for i in range(3)]
    request = request_of(good[0], span(trace_id, b"\x00" * 8), *good[1:])
    if encoding == "protobuf":
        reply = requests.post(f"{live.url}/v1/traces", data=request.SerializeToString(), headers=PB, timeout=5)
        partial = ExportTraceServiceResponse.FromString(reply.content).partial_success
    else:
        body = json_format.MessageToDict(request, use_integers_for_enums=True)
        for s in body["resourceSpans"][0]["scopeSpans"][0]["spans"]:
            s["traceId"], s["spanId"] = trace_id.hex(), bytes.fromhex(_b64_to_hex(s["spanId"])).hex()
        reply = requests.post(f"{live.url}/v1/traces", data=json.dumps(body), headers=JSON, timeout=5)
        partial = json_format.Parse(reply.text, ExportTraceServiceResponse()).partial_success
    assert reply.status_code == 200
    assert partial.rejected_spans == 1
    assert "spans[1].spanId" in partial.error_message and "all zeros" in partial.error_message
    stored = zipkin_trace(live.url, trace_id.hex())
    assert sorted(s["name"] for s in stored.values()) == ["ok 0", "ok 1", "ok 2"]


def _b64_to_hex(value: str) -> str:
    import base64

    return base64.b64decode(value).hex()


def test_other_methods_are_refused(live):
    reply = requests.get(f"{live.otlp_url}/v1/traces", timeout=5)
    assert reply.status_code == 405 and "POST" in reply.headers["Allow"]


# -- fuzzing ------------------------------------------------------------------------------------

any_values = st.recursive(
    st.builds(AnyValue, string_value=st.text(max_size=20)) | st.builds(AnyValue, int_value=st.integers(-2**63, 2**63 - 1))
    | st.builds(AnyValue, double_value=st.floats()) | st.builds(AnyValue, bool_value=st.booleans())
    | st.builds(AnyValue, bytes_value=st.binary(max_size=8)) | st.just(AnyValue()),
    lambda children: st.lists(children, max_size=3).map(lambda vs: AnyValue(array_value={"values": vs}))
    | st.lists(st.tuples(st.text(max_size=5), children), max_size=3).map(
        lambda kvs: AnyValue(kvlist_value={"values": [KeyValue(key=k, value=v) for k, v in kvs]})),
    max_leaves=8,
)
key_values = st.lists(st.builds(KeyValue, key=st.text(max_size=10), value=any_values), max_size=4)
ids = st.one_of(st.binary(min_size=8, max_size=8), st.binary(max_size=20))
fuzzed_spans = st.builds(
    Span, trace_id=st.one_of(st.binary(min_size=16, max_size=16), st.binary(max_size=20)), span_id=ids,
    parent_span_id=st.one_of(st.just(b""), ids), name=st.text(max_size=20), kind=st.integers(0, 9),
    start_time_unix_nano=st.integers(0, 2**64 - 1), end_time_unix_nano=st.integers(0, 2**64 - 1),
    attributes=key_values,
    events=st.lists(st.builds(Span.Event, name=st.text(max_size=8), time_unix_nano=st.integers(0, 2**64 - 1),
                              attributes=key_values), max_size=2),
    status=st.builds(lambda code, message: {"code": code, "message": message}, st.integers(0, 5), st.text(max_size=10)),
)
requests_ = st.builds(
    lambda resource, spans: ExportTraceServiceRequest(resource_spans=[
        ResourceSpans(resource={"attributes": resource}, scope_spans=[ScopeSpans(spans=spans)])]),
    key_values, st.lists(fuzzed_spans, max_size=4))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request=requests_, as_json=st.booleans())
def test_fuzzed_requests_get_200_or_400_and_every_accepted_span_is_queryable(app, request, as_json):
    client = app.test_client()
    if as_json:
        body = json_format.MessageToDict(request)  # proto3 JSON, then OTLP's hex ids
        for rs in body.get("resourceSpans", []):
            for ss in rs.get("scopeSpans", []):
                for s in ss.get("spans", []):
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in s:
                            s[key] = _b64_to_hex(s[key])
        reply = client.post("/v1/traces", data=json.dumps(body), headers=JSON)
    else:
        reply = client.post("/v1/traces", data=request.SerializeToString(), headers=PB)
    assert reply.status_code in (200, 400), reply.data
    spans = list(request.resource_spans[0].scope_spans[0].spans) if request.resource_spans else []
    valid = [s for s in spans if len(s.trace_id) == 16 and any(s.trace_id) and len(s.span_id) == 8 and any(s.span_id)
             and (not s.parent_span_id or len(s.parent_span_id) == 8)]
    assert reply.status_code == (400 if spans and not valid else 200)
    for s in valid:
        stored = client.get(f"/api/v2/trace/{s.trace_id.hex()}")
        assert stored.status_code == 200
        assert s.span_id.hex() in {z["id"] for z in stored.get_json()}
    for path in ("/api/v2/services", "/api/v2/traces?limit=3", "/healthz"):
        assert client.get(path).status_code == 200


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=200), content_type=st.sampled_from(["application/x-protobuf", "application/json"]))
def test_arbitrary_bytes_never_break_the_proxy(app, body, content_type):
    reply = app.test_client().post("/v1/traces", data=body, headers={"Content-Type": content_type})
    assert reply.status_code in (200, 400), reply.data
    if reply.status_code == 400:
        assert status_pb2.Status.FromString(reply.data).message if content_type.endswith("protobuf") \
            else json.loads(reply.data)["message"]


@pytest.mark.parametrize("value", ["abc", "70000", "-1"])
def test_a_bad_otlp_port_flag_is_one_line_of_usage(value):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "trace_proxy", "--otlp-port", value], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2 and "--otlp-port" in result.stderr and "Traceback" not in result.stderr


def test_downstream_zipkin_collectors_get_otlp_spans_as_zipkin_v2_json():
    from tests.support.waiting import wait_for

    with running_proxy() as collector, running_proxy("--downstream", collector.url) as proxy:
        sent = otel_client.send_protobuf(f"{proxy.url}/v1/traces")
        def arrived():  # the SDK exported each span in a request of its own: wait for all three
            reply = requests.get(f"{collector.url}/api/v2/trace/{sent.trace_id}", timeout=5)
            return reply.ok and len(reply.json()) == 3 and zipkin_trace(collector.url, sent.trace_id)

        mirrored = wait_for(arrived, 10, "the spans at the downstream collector")
        assert mirrored == zipkin_trace(proxy.url, sent.trace_id)
        assert_sdk_trace(mirrored, sent)


json_leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12) \
    | st.from_regex(r"\A[0-9a-fA-F]{0,34}\Z")
otlp_keys = st.sampled_from(["resourceSpans", "scopeSpans", "spans", "resource", "attributes", "key", "value",
                             "stringValue", "intValue", "arrayValue", "values", "traceId", "spanId", "parentSpanId",
                             "kind", "startTimeUnixNano", "endTimeUnixNano", "events", "status", "code", "x"])
otlp_like_json = st.recursive(json_leaves, lambda children: st.lists(children, max_size=3)
                              | st.dictionaries(otlp_keys, children, max_size=4), max_leaves=25)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.dictionaries(otlp_keys, otlp_like_json, max_size=3))
def test_otlp_shaped_json_of_any_types_gets_200_or_400_never_a_crash(app, body):
    reply = app.test_client().post("/v1/traces", data=json.dumps(body), headers=JSON)
    assert reply.status_code in (200, 400), reply.data
    assert reply.headers["Content-Type"] == "application/json"
    json.loads(reply.data)


def test_the_web_ui_shows_otlp_spans_like_zipkin_ones():
    import re

    client = create_app(Settings(settle_seconds=0)).test_client()
    sent, body = otel_client.json_body()
    assert client.post("/v1/traces", data=body, headers=JSON).status_code == 200
    page = client.get(f"/trace/{sent.trace_id}?span={sent.root}").get_data(as_text=True)  # its panel open
    rows = re.findall(r'<div class="span row([^"]*)" role="row" id="[^"]+" data-span-id="([0-9a-f]+)"(.*?)</div>', page, re.S)
    assert [r[1] for r in rows] == [sent.root, sent.client, sent.internal]
    assert all(otel_client.SERVICE in r[2] for r in rows)
    assert [r[1] for r in rows if "error" in r[0]] == [sent.internal]
    assert "<dt>deployment.environment</dt><dd>test</dd>" in page
