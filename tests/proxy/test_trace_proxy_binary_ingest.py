"""Zipkin's binary encodings: v2 protobuf and v1 Thrift, with the limits, 4xx reasons and
robustness of JSON, and the same stored spans as the JSON of the same spans."""
from __future__ import annotations

import gzip
import secrets
import struct

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.support.trace_proxy_spans import envoy_trace
from tests.support.zipkin_thrift_writer import ipv4, signed64, thrift_body, zipkin_core as zc
from trace_proxy import create_app
from trace_proxy.ingest.zipkin_proto import encode_spans
from trace_proxy.settings import Settings

LIMIT = 64 * 1024
PROTO = {"Content-Type": "application/x-protobuf"}
THRIFT = {"Content-Type": "application/x-thrift"}


@pytest.fixture(scope="module")
def app():
    return create_app(Settings(max_body_bytes=LIMIT))


@pytest.fixture
def client(app):
    return app.test_client()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:  # length-delimited field, written by hand
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def test_protobuf_spans_are_stored_like_their_json(client):
    spans = envoy_trace()
    spans[0]["localEndpoint"]["ipv6"] = "2001:db8::1"
    spans[1]["remoteEndpoint"] = {"serviceName": "front-envoy", "ipv4": "127.0.0.1", "port": 10000}
    spans[1]["annotations"] = [{"timestamp": spans[1]["timestamp"] + 5, "value": "retry"}]
    assert client.post("/api/v2/spans", data=encode_spans(spans), headers=PROTO).status_code == 202
    stored = client.get(f"/api/v2/trace/{spans[0]['traceId']}").get_json()
    assert stored == spans
    zipped = envoy_trace()
    reply = client.post("/api/v2/spans", data=gzip.compress(encode_spans(zipped)),
                        headers={**PROTO, "Content-Encoding": "gzip"})
    assert reply.status_code == 202
    assert client.get(f"/api/v2/trace/{zipped[0]['traceId']}").get_json() == zipped


def test_protobuf_read_by_zipkin_proto_field_numbers(client):
    """Bytes laid out by hand from zipkin.proto, not by the proxy's own schema."""
    endpoint = _field(1, b"front-envoy") + _field(2, bytes([127, 0, 0, 1])) + b"\x20" + _varint(8000)
    span = (_field(1, bytes.fromhex("0af7651916cd43dd8448eb211c80319c")) + _field(3, bytes.fromhex("b7ad6b7169203331"))
            + b"\x20\x01" + _field(5, b"get /echo") + b"\x31" + struct.pack("<Q", 1_700_000_000_000_000)
            + b"\x38" + _varint(1500) + _field(8, endpoint) + _field(11, _field(1, b"http.status_code") + _field(2, b"200")))
    assert client.post("/api/v2/spans", data=_field(1, span), headers=PROTO).status_code == 202
    [stored] = client.get("/api/v2/trace/0af7651916cd43dd8448eb211c80319c").get_json()
    assert stored == {"traceId": "0af7651916cd43dd8448eb211c80319c", "id": "b7ad6b7169203331", "kind": "CLIENT",
                      "name": "get /echo", "timestamp": 1_700_000_000_000_000, "duration": 1500,
                      "localEndpoint": {"serviceName": "front-envoy", "ipv4": "127.0.0.1", "port": 8000},
                      "tags": {"http.status_code": "200"}}


def thrift_span(trace_id: str, **extra):
    ep = zc.Endpoint(ipv4=ipv4("10.129.211.111"), port=-25536, service_name="poodle")
    fields = dict(trace_id=signed64(trace_id[-16:]), name="persist", id=signed64("f4472e70cb669b31"),
                  timestamp=1_506_629_747_288_651, duration=192,
                  annotations=[zc.Annotation(timestamp=1_506_629_747_288_651, value="sr", host=ep),
                               zc.Annotation(timestamp=1_506_629_747_288_843, value="ss", host=ep)],
                  binary_annotations=[
                      zc.BinaryAnnotation(key="lc", value=b"poodle", annotation_type=6, host=ep),
                      zc.BinaryAnnotation(key="responseLength", value=struct.pack(">q", 136), annotation_type=4, host=ep),
                      zc.BinaryAnnotation(key="cache.hit", value=b"\x01", annotation_type=0, host=ep),
                      zc.BinaryAnnotation(key="sa", value=b"\x01", annotation_type=0,
                                          host=zc.Endpoint(ipv4=ipv4("10.0.0.9"), service_name="db"))])
    if len(trace_id) == 32:
        fields["trace_id_high"] = signed64(trace_id[:16])
    fields.update(extra)
    return zc.Span(**fields)


@pytest.mark.parametrize("trace_id", [secrets.token_hex(8), "f" + secrets.token_hex(16)[1:]], ids=["64-bit", "128-bit"])
def test_thrift_spans_become_queryable_v2_spans(client, trace_id):
    body = thrift_body([thrift_span(trace_id, parent_id=signed64("8000000000000001"))])
    assert client.post("/api/v1/spans", data=body, headers=THRIFT).status_code == 202
    [span] = client.get(f"/api/v2/trace/{trace_id}").get_json()
    assert span == {"traceId": trace_id, "id": "f4472e70cb669b31", "parentId": "8000000000000001", "name": "persist",
                    "kind": "SERVER", "timestamp": 1_506_629_747_288_651, "duration": 192,
                    "localEndpoint": {"serviceName": "poodle", "ipv4": "10.129.211.111", "port": 40000},
                    # As Zipkin's V1ThriftSpanReader reads it: only STRING binary annotations are tags,
                    # and "sa" (the server's address) names the remote side of client spans only.
                    "tags": {"lc": "poodle"}}


def _proto_span(**changes) -> bytes:
    span = {"traceId": secrets.token_hex(8), "id": "0000000000000001", "name": "x"}
    span.update(changes)
    return encode_spans([span])


BAD = [
    # (description, path, body, headers, status, reason fragment)
    ("protobuf on v1", "/api/v1/spans", _proto_span(), PROTO, 415, "application/x-thrift"),
    ("thrift on v2", "/api/v2/spans", b"\x0c\x00\x00\x00\x00", THRIFT, 415, "application/x-protobuf"),
    ("truncated protobuf", "/api/v2/spans", _proto_span()[:-3], PROTO, 400, "ListOfSpans"),
    ("protobuf id of 3 bytes", "/api/v2/spans", _field(1, _field(1, b"\x01" * 8) + _field(3, b"abc")), PROTO, 400,
     "span 0: id must be 8 bytes"),
    ("protobuf without id", "/api/v2/spans", _field(1, _field(1, b"\x01" * 8)), PROTO, 400, "span 0: id must be 8"),
    ("protobuf port out of range", "/api/v2/spans", _proto_span(localEndpoint={"port": 70000}), PROTO, 400, "port"),
    ("protobuf oversized", "/api/v2/spans", _proto_span(name="x" * LIMIT), PROTO, 413, "larger"),
    ("protobuf gzip bomb", "/api/v2/spans", gzip.compress(_proto_span(name="x" * LIMIT * 50)),
     {**PROTO, "Content-Encoding": "gzip"}, 413, "decompressed"),
    ("thrift not a list", "/api/v1/spans", b"\x0b\x00\x00\x00\x01a", THRIFT, 400, "list of structs"),
    ("thrift truncated", "/api/v1/spans", thrift_body([thrift_span("ab" * 8)])[:-4], THRIFT, 400, "ends in the middle"),
    ("thrift list claims 2^31 spans", "/api/v1/spans", b"\x0c\x7f\xff\xff\xff\x00", THRIFT, 400, "claims 2147483647"),
    ("thrift trailing bytes", "/api/v1/spans", thrift_body([]) + b"\x00", THRIFT, 400, "after the list"),
    ("thrift span without id", "/api/v1/spans", thrift_body([zc.Span(trace_id=1, name="x")]), THRIFT, 400,
     "span 0: span has no id"),
    ("thrift bad i64 annotation", "/api/v1/spans", thrift_body([zc.Span(trace_id=1, id=2, binary_annotations=[
        zc.BinaryAnnotation(key="n", value=b"\x01", annotation_type=4)])]), THRIFT, 400, "must be 8 bytes"),
]


def test_a_thrift_span_with_a_negative_duration_is_kept_without_one_as_zipkin_reads_it(client):
    """Zipkin's Span.Builder reads a negative duration as unset, for JSON and Thrift alike:
    the span is kept, not the whole request refused."""
    trace_id = secrets.randbits(63) or 1
    body = thrift_body([zc.Span(trace_id=trace_id, id=2, name="get", timestamp=1_000, duration=-5)])
    assert client.post("/api/v1/spans", data=body, headers=THRIFT).status_code == 202
    [kept] = client.get(f"/api/v2/trace/{trace_id:016x}").get_json()
    assert kept["timestamp"] == 1_000 and "duration" not in kept


@pytest.mark.parametrize("path,body,headers,status,reason", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_binary_bodies_get_4xx_with_a_reason(client, path, body, headers, status, reason):
    reply = client.post(path, data=body, headers=headers)
    assert (reply.status_code, reason in reply.get_data(as_text=True)) == (status, True), reply.get_data(as_text=True)


valid_proto_bodies = st.lists(st.just(None), min_size=1, max_size=3).map(lambda n: encode_spans(envoy_trace()[: len(n)]))
valid_thrift_bodies = st.lists(st.sampled_from(["ab" * 8, "cd" * 16]), max_size=3).map(
    lambda ids: thrift_body([thrift_span(t) for t in ids]))


def _mutate(body: bytes, position: int, byte: int) -> bytes:
    if not body:
        return bytes([byte])
    position %= len(body)
    return body[:position] + bytes([byte]) + body[position + 1:]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), encoding=st.sampled_from(["proto", "thrift"]))
def test_arbitrary_binary_bodies_get_202_or_400_and_never_break_the_store(app, data, encoding):
    valid = valid_proto_bodies if encoding == "proto" else valid_thrift_bodies
    body = data.draw(st.one_of(
        st.binary(max_size=200),
        st.builds(_mutate, valid, st.integers(0, 10_000), st.integers(0, 255)),
        st.builds(lambda b, n: b[:n], valid, st.integers(0, 2000)),
    ))
    path, headers = ("/api/v2/spans", PROTO) if encoding == "proto" else ("/api/v1/spans", THRIFT)
    client = app.test_client()
    reply = client.post(path, data=body, headers=headers)
    assert reply.status_code in (202, 400), reply.get_data(as_text=True)
    if reply.status_code == 400:
        assert reply.get_data(as_text=True).strip()
    for path in ("/api/v2/services", "/api/v2/traces?limit=3", "/healthz"):
        assert client.get(path).status_code == 200
