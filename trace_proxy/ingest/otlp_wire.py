"""OTLP/HTTP on the wire: read an ExportTraceServiceRequest, write the replies the spec prescribes.

Both encodings of the specification (opentelemetry-proto's docs/specification.md, OTLP/HTTP):
binary protobuf (`application/x-protobuf`) and its JSON mapping (`application/json`), whose
trace and span ids are hex strings instead of proto3 JSON's base64. A reply is encoded like
the request: an ExportTraceServiceResponse on success (with `partial_success` when some spans
were refused), a google.rpc.Status on failure (with a BadRequest detail for bad data).
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import IO, Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from trace_proxy.ingest.body import IngestError, gunzip_limited, read_limited, strict_json

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_ID_FIELDS = ("traceId", "spanId", "parentSpanId")
# google.rpc.Code values for the Status.code the spec lets servers fill in.
_RPC_CODES = {400: 3, 404: 5, 405: 12, 413: 8, 415: 3}  # INVALID_ARGUMENT, NOT_FOUND, UNIMPLEMENTED, RESOURCE_EXHAUSTED


@dataclass
class OtlpBody:
    request: ExportTraceServiceRequest
    encoding: str  # PROTOBUF or JSON: the reply is encoded the same way
    size: int = 0  # bytes once decompressed


def encoding_of(content_type: str | None) -> str | None:
    """PROTOBUF or JSON for a request's Content-Type; None for anything else."""
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    return mime if mime in (PROTOBUF, JSON) else None


def reply_encoding(content_type: str | None) -> str:
    """How to encode a reply: like the request, protobuf when the request's type is unusable."""
    return encoding_of(content_type) or PROTOBUF


def decode(stream: IO[bytes], *, content_type: str | None, content_encoding: str | None, limit: int) -> OtlpBody:
    encoding = encoding_of(content_type)
    if encoding is None:
        mime = (content_type or "").split(";", 1)[0].strip().lower()
        raise IngestError(415, f"unsupported Content-Type {mime!r}: OTLP/HTTP takes {PROTOBUF} or {JSON}")
    compression = (content_encoding or "").strip().lower()
    if compression not in ("", "identity", "gzip"):
        raise IngestError(415, f"unsupported Content-Encoding {compression!r}: send gzip or nothing")
    data = read_limited(stream, limit)
    if compression == "gzip":
        data = gunzip_limited(data, limit)
    request = ExportTraceServiceRequest()
    if encoding == PROTOBUF:
        try:
            request.ParseFromString(data)
        except DecodeError as exc:
            raise IngestError(400, f"body is not a valid OTLP protobuf ExportTraceServiceRequest: {exc}",
                              "malformed") from None
    else:
        _parse_json(data, request)
    return OtlpBody(request, encoding, len(data))


def _parse_json(data: bytes, request: ExportTraceServiceRequest) -> None:
    payload = strict_json(data)
    if not isinstance(payload, dict):
        raise IngestError(400, "body must be a JSON object (an ExportTraceServiceRequest)", "malformed")
    try:
        _hex_ids_to_base64(payload)
        # Receivers MUST ignore unknown fields (the spec's JSON rules).
        json_format.ParseDict(payload, request, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, AttributeError, RecursionError, SystemError) as exc:
        # SystemError: upb's own complaint about some shapes ParseDict should refuse as ParseError.
        raise IngestError(400, f"body is not a valid OTLP JSON ExportTraceServiceRequest: {_short(exc)}",
                          "malformed") from None


def _hex_ids_to_base64(payload: dict) -> None:
    """OTLP JSON carries ids as hex; proto3's JSON mapping (which ParseDict speaks) as base64."""
    for resource_spans in _items(payload, "resourceSpans"):
        for scope_spans in _items(resource_spans, "scopeSpans"):
            for span in _items(scope_spans, "spans"):
                _convert_ids(span, "span")
                for link in _items(span, "links"):
                    _convert_ids(link, "link")


def _items(parent: Any, key: str) -> list:
    value = parent.get(key) if isinstance(parent, dict) else None
    return value if isinstance(value, list) else []


def _convert_ids(obj: Any, where: str) -> None:
    if not isinstance(obj, dict):
        return
    for key in _ID_FIELDS:
        value = obj.get(key)
        if isinstance(value, str) and value:
            try:
                obj[key] = base64.b64encode(bytes.fromhex(value)).decode()
            except ValueError:
                raise ValueError(f"{where} {key} {value[:40]!r} is not hex") from None


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 300 else text[:300] + "…"


def _encode(message, encoding: str) -> bytes:
    if encoding == JSON:
        return json.dumps(json_format.MessageToDict(message), separators=(",", ":")).encode()
    return message.SerializeToString()


def success(encoding: str, rejected: int = 0, message: str = "") -> bytes:
    """ExportTraceServiceResponse: `partial_success` set only when something was refused."""
    response = ExportTraceServiceResponse()
    if rejected or message:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    return _encode(response, encoding)


def failure(encoding: str, status: int, message: str, violations: list[tuple[str, str]] = ()) -> bytes:
    """google.rpc.Status; bad data (400) carries a BadRequest listing the offending fields."""
    reply = status_pb2.Status(code=_RPC_CODES.get(status, 3 if status < 500 else 13), message=message)
    if violations:
        detail = error_details_pb2.BadRequest()
        for field, description in violations:
            detail.field_violations.add(field=field, description=description)
        reply.details.add().Pack(detail)
    return _encode(reply, encoding)
