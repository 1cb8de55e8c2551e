"""Zipkin v1 Thrift (`application/x-thrift`) → spans: a TBinaryProtocol list of zipkinCore Spans,
as Zipkin's collectors and the upstream proxy accepted it from older Zipkin clients.

A small strict reader rather than a Thrift library, for a reason: thriftpy2 (pure and
Cython) reads past the end of a truncated body as empty structs, and trusts a list's
declared size, so a 15-byte body claiming 2^31 spans exhausted the process's memory. This
reader refuses both (no read beyond the body; no list longer than the bytes left), skips
unknown fields as Thrift does, and caps nesting. The tests cross-check it against bodies
that thriftpy2 writes from Zipkin's IDL.

Each span becomes its v1 JSON shape (hex ids, dotted addresses, typed binary annotation
values) and goes through `zipkin_json.from_v1`, so Thrift spans meet exactly the rules,
limits and 4xx reasons of JSON ones, and Honeycomb events read the same fields from them.
"""
from __future__ import annotations

import base64
import socket
import struct
from typing import Any

from trace_proxy.ingest.zipkin_json import Span, SpanError, each_span
from trace_proxy.ingest.zipkin_v1 import from_v1

# TBinaryProtocol type ids
BOOL, BYTE, DOUBLE, I16, I32, I64, STRING, STRUCT, MAP, SET, LIST = 2, 3, 4, 6, 8, 10, 11, 12, 13, 14, 15
MAX_DEPTH = 8  # a Span nests at most 3 deep (Span → Annotation → Endpoint)
_FIXED = {BYTE: struct.Struct(">b"), DOUBLE: struct.Struct(">d"), I16: struct.Struct(">h"),
          I32: struct.Struct(">i"), I64: struct.Struct(">q")}
_U64 = 2**64
_ANNOTATION_TYPES = ("BOOL", "BYTES", "I16", "I32", "I64", "DOUBLE", "STRING")
_UNPACK = {2: _FIXED[I16], 3: _FIXED[I32], 4: _FIXED[I64], 5: _FIXED[DOUBLE]}


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > len(self.data):
            raise SpanError("body is not a valid Thrift list of spans: it ends in the middle of a value")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def fixed(self, ttype: int) -> Any:
        codec = _FIXED[ttype]
        return codec.unpack(self.take(codec.size))[0]

    def size(self, what: str) -> int:
        n = self.fixed(I32)
        # Every element takes at least one byte: a longer claim is a lie, not a reason to allocate.
        if n < 0 or n > len(self.data) - self.pos:
            raise SpanError(f"body is not a valid Thrift list of spans: a {what} claims {n} elements")
        return n

    def value(self, ttype: int, depth: int) -> Any:
        if ttype == BOOL:
            return self.take(1) != b"\x00"
        if ttype in _FIXED:
            return self.fixed(ttype)
        if ttype == STRING:
            return self.take(self.size("string"))
        if depth >= MAX_DEPTH:
            raise SpanError("body is not a valid Thrift list of spans: nested too deeply")
        if ttype == STRUCT:
            return self.struct(depth + 1)
        if ttype in (LIST, SET):
            etype = self.fixed(BYTE)
            return [self.value(etype, depth + 1) for _ in range(self.size("list"))]
        if ttype == MAP:
            ktype, vtype = self.fixed(BYTE), self.fixed(BYTE)
            for _ in range(self.size("map")):
                self.value(ktype, depth + 1)
                self.value(vtype, depth + 1)
            return None  # no zipkinCore field is a map: read past it
        raise SpanError(f"body is not a valid Thrift list of spans: unknown type {ttype}")

    def struct(self, depth: int) -> dict[int, tuple[int, Any]]:
        """Field id → (wire type, value); the caller checks the types it expects."""
        fields = {}
        while (ftype := self.fixed(BYTE)) != 0:
            fid = self.fixed(I16)
            fields[fid] = (ftype, self.value(ftype, depth))
        return fields


def _get(fields: dict, fid: int, ttype: int, default: Any = None) -> Any:
    """A field of the expected type; one of another type is ignored, as Thrift skips it."""
    found = fields.get(fid)
    return found[1] if found is not None and found[0] == ttype else default


def _text(raw: bytes | None, what: str) -> str:
    try:
        return (raw or b"").decode("utf-8")
    except UnicodeDecodeError:
        raise SpanError(f"{what} is not UTF-8") from None


def _hex64(value: int) -> str:
    return f"{value % _U64:016x}"


def _endpoint(fields: dict | None) -> dict[str, Any] | None:
    if fields is None:
        return None
    out: dict[str, Any] = {}
    if name := _text(_get(fields, 3, STRING), "endpoint serviceName"):
        out["serviceName"] = name
    if ipv4 := _get(fields, 1, I32):
        out["ipv4"] = socket.inet_ntoa(struct.pack(">i", ipv4))
    if ipv6 := _get(fields, 4, STRING):
        if len(ipv6) != 16:
            raise SpanError(f"endpoint ipv6 must be 16 bytes, not {len(ipv6)}")
        out["ipv6"] = socket.inet_ntop(socket.AF_INET6, ipv6)
    if port := _get(fields, 2, I16):
        out["port"] = port % 2**16  # Thrift has no unsigned i16: ports above 32767 arrive negative
    return out


def _annotation_value(key: str, kind: int | None, raw: bytes) -> Any:
    """A binary annotation's bytes as the JSON value v1 JSON would carry."""
    if kind in (None, 6):  # STRING, also when the type is missing (as Zipkin reads it)
        return _text(raw, f"binaryAnnotation {key!r}")
    if kind == 0:
        return raw[:1] not in (b"", b"\x00")
    if kind == 1:
        return base64.b64encode(raw).decode("ascii")
    if kind in _UNPACK:
        codec = _UNPACK[kind]
        if len(raw) != codec.size:
            raise SpanError(f"binaryAnnotation {key!r} of type {_ANNOTATION_TYPES[kind]} must be {codec.size} bytes")
        return codec.unpack(raw)[0]
    raise SpanError(f"binaryAnnotation {key!r} has unknown type {kind}")


def to_v1_json(fields: dict) -> dict[str, Any]:
    """One Thrift span's fields in Zipkin's v1 JSON shape (before validation)."""
    trace_id, span_id = _get(fields, 1, I64), _get(fields, 4, I64)
    if trace_id is None or span_id is None:
        raise SpanError(f"span has no {'traceId' if trace_id is None else 'id'}")
    high = _get(fields, 12, I64)
    doc: dict[str, Any] = {"traceId": (_hex64(high) if high else "") + _hex64(trace_id), "id": _hex64(span_id),
                           "name": _text(_get(fields, 3, STRING), "name")}
    if (parent := _get(fields, 5, I64)) is not None:
        doc["parentId"] = _hex64(parent)
    for fid, key in ((10, "timestamp"), (11, "duration")):
        if (value := _get(fields, fid, I64)) is not None:
            doc[key] = value  # a negative one gets from_v1's JSON reason
    if _get(fields, 9, BOOL):
        doc["debug"] = True
    annotations = []
    for ann in _get(fields, 6, LIST, ()):
        if not isinstance(ann, dict):
            raise SpanError("annotations must be a list of structs")
        item: dict[str, Any] = {"timestamp": _get(ann, 1, I64, 0), "value": _text(_get(ann, 2, STRING), "annotation")}
        if (ep := _endpoint(_get(ann, 3, STRUCT))) is not None:
            item["endpoint"] = ep
        annotations.append(item)
    binary = []
    for ba in _get(fields, 8, LIST, ()):
        if not isinstance(ba, dict):
            raise SpanError("binaryAnnotations must be a list of structs")
        key = _get(ba, 1, STRING)
        if key is None:
            raise SpanError("binaryAnnotation has no key")
        key = _text(key, "binaryAnnotation key")
        kind = _get(ba, 3, I32)
        item = {"key": key, "value": _annotation_value(key, kind, _get(ba, 2, STRING, b""))}
        if kind not in (None, 6):  # v1 JSON's name of the type: only STRING ones become tags
            item["type"] = _ANNOTATION_TYPES[kind]
        if (ep := _endpoint(_get(ba, 4, STRUCT))) is not None:
            item["endpoint"] = ep
        binary.append(item)
    if annotations:
        doc["annotations"] = annotations
    if binary:
        doc["binaryAnnotations"] = binary
    return doc


def parse(data: bytes) -> list[Span]:
    """A TBinaryProtocol list<Span> body → validated spans; SpanError names the first bad span."""
    reader = _Reader(data)
    if len(data) < 5 or data[0] != STRUCT:
        raise SpanError("body is not a Thrift list of spans (TBinaryProtocol, a list of structs)")
    reader.pos = 1
    raw_spans = [reader.struct(1) for _ in range(reader.size("list"))]
    if reader.pos != len(data):
        raise SpanError(f"body is not a valid Thrift list of spans: {len(data) - reader.pos} bytes after the list")
    return each_span(raw_spans, lambda fields: from_v1(to_v1_json(fields)))
