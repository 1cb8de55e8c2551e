"""OTLP spans → the proxy's internal Span (a Zipkin v2 dict), so they are stored, queried and
forwarded exactly like Zipkin spans.

The mapping follows OpenTelemetry's Zipkin exporter rules: service name from the resource's
`service.name`, span kind (INTERNAL has no Zipkin kind), status as `otel.status_code` and
`error`, attributes as string tags (arrays and maps as JSON), events as annotations, the
instrumentation scope as `otel.scope.name` / `otel.scope.version`, ids in Zipkin's lowercase
hex. Resource attributes become tags too (a span's own attribute wins a clash), so Honeycomb
gets them as fields. A span with an invalid id is refused alone; the others are kept.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any, Iterable

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as OtlpSpan, Status

from trace_proxy.ingest.zipkin_json import Span, normalize_trace_id

SERVICE_NAME = "service.name"
UNKNOWN_SERVICE = "unknown_service"  # what OpenTelemetry names a service that did not say
_KINDS = {
    OtlpSpan.SPAN_KIND_SERVER: "SERVER",
    OtlpSpan.SPAN_KIND_CLIENT: "CLIENT",
    OtlpSpan.SPAN_KIND_PRODUCER: "PRODUCER",
    OtlpSpan.SPAN_KIND_CONSUMER: "CONSUMER",
}
_STATUS = {Status.STATUS_CODE_OK: "OK", Status.STATUS_CODE_ERROR: "ERROR"}
_ZERO_TRACE, _ZERO_SPAN = bytes(16), bytes(8)


@dataclass
class Conversion:
    spans: list[Span] = field(default_factory=list)
    # (field path, reason) for each refused span, e.g. ("resourceSpans[0].scopeSpans[0].spans[3].traceId", "…")
    rejected: list[tuple[str, str]] = field(default_factory=list)


class _Refused(ValueError):
    def __init__(self, field_name: str, reason: str):
        super().__init__(reason)
        self.field_name = field_name


def any_value(value: AnyValue) -> Any:
    """An attribute value as plain Python (for JSON); None when unset."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, which)


def tag_value(value: AnyValue) -> str:
    """Zipkin tags are strings: booleans as true/false, numbers in decimal, the rest as JSON."""
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "bool_value":
        return "true" if value.bool_value else "false"
    if which in ("int_value", "double_value"):
        return str(getattr(value, which))
    if which is None:
        return ""
    plain = any_value(value)
    return plain if isinstance(plain, str) else json.dumps(plain, separators=(",", ":"), ensure_ascii=False)


def _tags(attributes: Iterable[KeyValue]) -> dict[str, str]:
    tags = {}
    for kv in attributes:
        value = kv.value
        # Nearly every attribute is a non-empty string (all of Envoy's are): one lookup for those.
        tags[kv.key] = value.string_value or tag_value(value)
    return tags


def _span_id(raw: bytes, field_name: str) -> str:
    if len(raw) != 8:
        raise _Refused(field_name, f"{field_name} must be 8 bytes (16 hex characters), got {len(raw)}")
    if raw == _ZERO_SPAN:
        raise _Refused(field_name, f"{field_name} must not be all zeros")
    return raw.hex()


def _trace_id(raw: bytes, known: dict[bytes, str]) -> str:
    """Lowercase hex as Zipkin writes it; `known` remembers the ids a request already had."""
    found = known.get(raw)
    if found is not None:
        return found
    if len(raw) != 16:
        raise _Refused("traceId", f"traceId must be 16 bytes (32 hex characters), got {len(raw)}")
    if raw == _ZERO_TRACE:
        raise _Refused("traceId", "traceId must not be all zeros")
    known[raw] = normalize_trace_id(raw.hex())
    return known[raw]


def _annotation(event) -> dict[str, Any]:
    value = event.name
    if event.attributes:
        attributes = {kv.key: any_value(kv.value) for kv in event.attributes}
        value = f"{json.dumps(event.name, ensure_ascii=False)}: {json.dumps(attributes, ensure_ascii=False, separators=(',', ':'))}"
    return {"timestamp": event.time_unix_nano // 1000, "value": value}


def to_zipkin(span: OtlpSpan, service: str, base_tags: dict[str, str],
              trace_ids: dict[bytes, str] | None = None) -> dict[str, Any]:
    """One OTLP span as a Zipkin v2 span; raises _Refused for an invalid id."""
    trace_id = _trace_id(span.trace_id, {} if trace_ids is None else trace_ids)
    v2: dict[str, Any] = {"traceId": trace_id, "id": _span_id(span.span_id, "spanId")}
    if span.parent_span_id and span.parent_span_id != _ZERO_SPAN:
        v2["parentId"] = _span_id(span.parent_span_id, "parentSpanId")
    if span.name:
        v2["name"] = span.name
    kind = _KINDS.get(span.kind)
    if kind:
        v2["kind"] = kind
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    if start:
        v2["timestamp"] = start // 1000
        if end > start:
            # Zipkin reads a duration of 0 as "unknown": a span shorter than 1 µs lasts 1 µs.
            v2["duration"] = max(1, (end - start) // 1000)
    v2["localEndpoint"] = {"serviceName": service}
    tags = dict(base_tags)
    tags.update(_tags(span.attributes))
    if "peer.service" in tags:
        v2["remoteEndpoint"] = {"serviceName": tags["peer.service"]}
    status = _STATUS.get(span.status.code)
    if status:
        tags["otel.status_code"] = status
        if status == "ERROR":
            # Zipkin marks a failed span with an `error` tag holding the description.
            tags["error"] = span.status.message or tags.get("error") or "true"
    if span.events:
        v2["annotations"] = [_annotation(e) for e in span.events]
    if tags:
        v2["tags"] = tags
    return v2


def convert(request: ExportTraceServiceRequest) -> Conversion:
    """Every span of the request, each either converted or refused with its reason."""
    result = Conversion()
    trace_ids: dict[bytes, str] = {}  # a request's spans mostly share a few traces
    for r, resource_spans in enumerate(request.resource_spans):
        resource_tags = _tags(resource_spans.resource.attributes)
        service = resource_tags.pop(SERVICE_NAME, "") or UNKNOWN_SERVICE
        for s, scope_spans in enumerate(resource_spans.scope_spans):
            base = dict(resource_tags)
            if scope_spans.scope.name:
                base["otel.scope.name"] = scope_spans.scope.name
            if scope_spans.scope.version:
                base["otel.scope.version"] = scope_spans.scope.version
            for i, span in enumerate(scope_spans.spans):
                try:
                    v2 = to_zipkin(span, service, base, trace_ids)
                except _Refused as exc:
                    result.rejected.append((f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}].{exc.field_name}", str(exc)))
                    continue
                result.spans.append(Span(v2=v2, raw=v2, version=2))
    return result
