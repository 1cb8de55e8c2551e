"""Zipkin v1 Thrift bodies written by thriftpy2 from Zipkin's IDL: an implementation independent
of the proxy's own reader, as an old Zipkin client (or the upstream proxy's tests) sends them."""
from __future__ import annotations

import io

import thriftpy2
from thriftpy2.protocol import TBinaryProtocol
from thriftpy2.transport import TMemoryBuffer

ZIPKIN_CORE_IDL = """
struct Endpoint { 1: i32 ipv4, 2: i16 port, 3: string service_name, 4: optional binary ipv6 }
struct Annotation { 1: i64 timestamp, 2: string value, 3: optional Endpoint host }
enum AnnotationType { BOOL, BYTES, I16, I32, I64, DOUBLE, STRING }
struct BinaryAnnotation {
  1: string key, 2: binary value, 3: AnnotationType annotation_type, 4: optional Endpoint host
}
struct Span {
  1: i64 trace_id, 3: string name, 4: i64 id, 5: optional i64 parent_id,
  6: list<Annotation> annotations, 8: list<BinaryAnnotation> binary_annotations,
  9: optional bool debug = 0, 10: optional i64 timestamp, 11: optional i64 duration,
  12: optional i64 trace_id_high
}
struct ListOfSpans { 1: list<Span> spans }
"""
zipkin_core = thriftpy2.load_fp(io.StringIO(ZIPKIN_CORE_IDL), module_name="zipkin_core_thrift")


def signed64(hex_id: str) -> int:
    value = int(hex_id, 16)
    return value - 2**64 if value >= 2**63 else value


def ipv4(dotted: str) -> int:
    a, b, c, d = (int(x) for x in dotted.split("."))
    value = (a << 24) | (b << 16) | (c << 8) | d
    return value - 2**32 if value >= 2**31 else value


def thrift_body(spans: list) -> bytes:
    """zipkin_core.Span objects → the collectors' body: a bare TBinaryProtocol list<Span>."""
    buffer = TMemoryBuffer()
    TBinaryProtocol(buffer).write_struct(zipkin_core.ListOfSpans(spans=spans))
    return buffer.getvalue()[3:-1]  # without the wrapper struct's field header and stop byte
