"""One POST to /api/v1/spans or /api/v2/spans → spans, whichever Zipkin encoding it carries.

v2: JSON or protobuf (`application/x-protobuf`); v1: JSON or Thrift (`application/x-thrift`),
as Zipkin's own collectors take them. Every encoding shares the size limits, gzip handling
and span rules (a binary span is checked as its JSON shape), so a client gets the same
answer whatever it sends.
"""
from __future__ import annotations

from typing import IO

from trace_proxy.ingest import zipkin_canonical, zipkin_json, zipkin_v1
from trace_proxy.ingest.body import _JSON_TYPES, Body, IngestError, media_type, parse_json, read_body
from trace_proxy.ingest.zipkin_json import Span, SpanError

PROTOBUF = "application/x-protobuf"
THRIFT = "application/x-thrift"
BINARY = {2: PROTOBUF, 1: THRIFT}  # the binary encoding each API version has


def encoding_name(content_type: str, version: int) -> str:
    """A short name of the encoding a body came in, for /metrics: json_v2, proto_v2, json_v1, thrift_v1."""
    mime = media_type(content_type)
    return f"{'proto' if mime == PROTOBUF else 'thrift' if mime == THRIFT else 'json'}_v{version}"


def _binary_parser(mime: str):
    # Imported on first use: a proxy that only ever sees JSON never loads protobuf.
    if mime == PROTOBUF:
        from trace_proxy.ingest import zipkin_proto

        return zipkin_proto.parse
    from trace_proxy.ingest import zipkin_thrift

    return zipkin_thrift.parse


def parse_request(stream: IO[bytes], *, content_type: str | None, content_encoding: str | None, limit: int,
                  version: int) -> tuple[Body, list[Span]]:
    """Raises IngestError (the body) or SpanError (a span): both mean 4xx with that reason."""
    mime = media_type(content_type)
    if mime not in _JSON_TYPES and mime != BINARY[version]:
        raise IngestError(415, f"{'unsupported Content-Type ' + repr(mime) if mime else 'no Content-Type'} on /api/v{version}/spans: "
                               f"send application/json or {BINARY[version]}", "unsupported_media_type")
    raw, data, encoding = read_body(stream, content_encoding=content_encoding, limit=limit)
    if mime == BINARY[version]:
        spans = _binary_parser(mime)(data)
        return Body(raw, content_type or mime, encoding, len(data)), spans
    canonical = zipkin_canonical.parse(data) if version == 2 else None
    if canonical is not None:  # what Envoy sends: decoded and checked in one pass
        return Body(raw, content_type or "application/json", encoding, len(data)), canonical
    payload = parse_json(data)
    spans = zipkin_json.parse(payload) if version == 2 else zipkin_v1.parse(payload)
    return Body(raw, content_type or "application/json", encoding, len(data)), spans


__all__ = ["parse_request", "encoding_name", "IngestError", "SpanError", "PROTOBUF", "THRIFT"]
