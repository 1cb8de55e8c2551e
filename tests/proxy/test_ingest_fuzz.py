"""Fuzzing every span encoding (issue 21, item 6): valid bodies mutated by hypothesis.

Whatever arrives, the answer is never a 5xx, never slower than the deadline (no hang), and
the proxy stays healthy: afterwards a valid body of the same encoding is still accepted.
The default run is short (FUZZ_EXAMPLES per encoding, 100 unless set); a longer run is
opt-in: `FUZZ_EXAMPLES=5000 pytest tests/proxy/test_ingest_fuzz.py`.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.support.zipkin_thrift_writer import ipv4, signed64, thrift_body, zipkin_core as zc
from trace_proxy import create_app
from trace_proxy.ingest.zipkin_proto import encode_spans
from trace_proxy.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import otlp_batch  # noqa: E402  (bench/: the same spans as OTLP protobuf)

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "100"))
T = 1_700_000_000_000_000


def zipkin_v2() -> list[dict]:
    return [{"traceId": "463ac35c9f6413ad48485a3953bb6124", "id": "a2fb4a1d1a96d312", "parentId": "0020000000000001",
             "name": "get /api", "kind": "SERVER", "timestamp": T, "duration": 207,
             "localEndpoint": {"serviceName": "backend", "ipv4": "192.168.99.101", "port": 9000},
             "remoteEndpoint": {"serviceName": "frontend", "ipv6": "2001:db8::c001", "port": 63713},
             "annotations": [{"timestamp": T + 5, "value": "wr"}], "tags": {"http.path": "/api", "clnt/finagle.version": "6.45.0"},
             "shared": True}]


def zipkin_v1() -> list[dict]:
    endpoint = {"serviceName": "frontend", "ipv4": "127.0.0.1", "port": 8080}
    return [{"traceId": "5af7183fb1d4cf5f", "id": "352bff9a74ca9ad2", "parentId": "6b221d5bc9e6496c", "name": "get",
             "timestamp": T, "duration": 100, "annotations": [{"timestamp": T, "value": "cs", "endpoint": endpoint},
                                                             {"timestamp": T + 100, "value": "cr", "endpoint": endpoint}],
             "binaryAnnotations": [{"key": "http.path", "value": "/api", "endpoint": endpoint},
                                   {"key": "sa", "value": True, "endpoint": {"serviceName": "backend", "ipv4": "10.0.0.2"}}]}]


def thrift() -> bytes:
    host = zc.Endpoint(ipv4=ipv4("10.1.2.3"), port=8080, service_name="svc")
    return thrift_body([zc.Span(trace_id=signed64("5af7183fb1d4cf5f"), name="get", id=signed64("352bff9a74ca9ad2"),
                                timestamp=T, duration=5,
                                annotations=[zc.Annotation(timestamp=T, value="sr", host=host)],
                                binary_annotations=[zc.BinaryAnnotation(key="k", value=b"v", annotation_type=6,
                                                                        host=host)])])


def otlp_json() -> bytes:
    from google.protobuf import json_format

    request = ExportTraceServiceRequest.FromString(otlp_batch.from_spans(zipkin_v2()))
    doc = json_format.MessageToDict(request)
    for resource in doc.get("resourceSpans", []):
        for scope in resource.get("scopeSpans", []):
            for span in scope.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:  # OTLP JSON carries ids as hex, not proto3's base64
                        import base64

                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(doc).encode()


ENCODINGS = {
    "json_v2": ("/api/v2/spans", "application/json", lambda: json.dumps(zipkin_v2()).encode()),
    "json_v1": ("/api/v1/spans", "application/json", lambda: json.dumps(zipkin_v1()).encode()),
    "proto_v2": ("/api/v2/spans", "application/x-protobuf", lambda: encode_spans(zipkin_v2())),
    "thrift_v1": ("/api/v1/spans", "application/x-thrift", thrift),
    "otlp_proto": ("/v1/traces", "application/x-protobuf", lambda: otlp_batch.from_spans(zipkin_v2())),
    "otlp_json": ("/v1/traces", "application/json", otlp_json),
}

# JSON values to put in place of a valid one: deep, odd, huge, wrongly typed.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False)
    | st.text(max_size=20) | st.sampled_from(["\ud800", "0" * 16, "0" * 32, "::ffff:1.2.3.4", "AAA", ""]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8)


def byte_mutations(data: bytes):
    """Flip, insert, delete or truncate bytes of a valid body."""
    positions = st.integers(min_value=0, max_value=max(len(data) - 1, 0))
    flip = st.tuples(positions, st.integers(0, 255)).map(lambda pv: data[:pv[0]] + bytes([pv[1]]) + data[pv[0] + 1:])
    insert = st.tuples(positions, st.binary(min_size=1, max_size=8)).map(lambda pb: data[:pb[0]] + pb[1] + data[pb[0]:])
    delete = st.tuples(positions, st.integers(1, 16)).map(lambda pn: data[:pn[0]] + data[pn[0] + pn[1]:])
    truncate = positions.map(lambda p: data[:p])
    return st.one_of(flip, insert, delete, truncate)


def json_mutations(doc):
    """Replace one value anywhere in a valid JSON document (or add a key) with an odd one."""
    paths = []

    def walk(node, path):
        paths.append(path)
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, path + (key,))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, path + (index,))
    walk(doc, ())

    def apply(choice):
        path, value = choice
        copy = json.loads(json.dumps(doc))
        if not path:
            return json.dumps(value).encode("utf-8", "surrogatepass")
        node = copy
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = value
        return json.dumps(copy).encode("utf-8", "surrogatepass")
    return st.tuples(st.sampled_from(paths), json_values).map(apply)


@pytest.fixture(scope="module")
def client():
    app = create_app(Settings(max_spans=2000))
    yield app.test_client()
    app.extensions["trace_proxy"].close()


def check(client, path: str, content_type: str, body: bytes, valid: bytes) -> None:
    reply = client.post(path, data=body, headers={"Content-Type": content_type})
    assert reply.status_code < 500, (reply.status_code, body[:300], reply.data[:300])
    assert client.get("/healthz").status_code == 200


FUZZ = settings(max_examples=EXAMPLES, deadline=2000, suppress_health_check=[HealthCheck.too_slow,
                                                                              HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_mutated_bytes_never_break_the_proxy(client, encoding):
    path, content_type, build = ENCODINGS[encoding]
    valid = build()

    @FUZZ
    @given(body=byte_mutations(valid))
    def run(body):
        check(client, path, content_type, body, valid)
    run()
    assert client.post(path, data=valid, headers={"Content-Type": content_type}).status_code in (200, 202)


@pytest.mark.parametrize("encoding", ["json_v2", "json_v1", "otlp_json"])
def test_mutated_json_values_never_break_the_proxy(client, encoding):
    path, content_type, build = ENCODINGS[encoding]
    valid = build()

    @FUZZ
    @given(body=json_mutations(json.loads(valid)))
    def run(body):
        check(client, path, content_type, body, valid)
    run()
    assert client.post(path, data=valid, headers={"Content-Type": content_type}).status_code in (200, 202)
    # and every page still renders what was stored
    for page in ("/", "/?arriving=1&lookback=999999999999", "/heatmap", "/dependencies", "/api/v2/services"):
        assert client.get(page).status_code == 200, page
