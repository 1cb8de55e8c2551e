"""OTLP spans → the proxy's internal Span (a Zipkin v2 dict), so they are stored, queried and
forwarded exactly like Zipkin spans.

The mapping follows OpenTelemetry's Zipkin exporter rules: service name from the resource's
`service.name`, span kind (INTERNAL has no Zipkin kind), status as `otel.status_code` and
`error` (empty without a description; `error: false` dropped when the span did not fail),
remote endpoint from the spec's ranked attributes, dropped counts as `otel.dropped_*_count`,
attributes as string tags (otlp_values: the spec's text for each type), events as annotations, the
instrumentation scope as `otel.scope.name` / `otel.scope.version`, ids in Zipkin's lowercase
hex. Resource attributes become tags too (a span's own attribute wins a clash), so Honeycomb
gets them as fields. A span with an invalid id is refused alone; the others are kept.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, Iterable

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as OtlpSpan, Status

from trace_proxy.ingest import otlp_values
from trace_proxy.ingest.zipkin_json import Span, canonical_ip, normalize_trace_id

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
# The remote service's name, first found first (the spec's sdk_exporters/zipkin.md ranking).
_REMOTE_NAME = ("peer.service", "server.address", "net.peer.name", "network.peer.address", "net.sock.peer.addr",
                "peer.hostname", "peer.address", "db.name")
_REMOTE_ADDRESS = ("network.peer.address", "net.sock.peer.addr", "net.peer.ip")
_REMOTE_PORT = ("network.peer.port", "net.peer.port", "net.sock.peer.port", "server.port")
_DROPPED = (("dropped_attributes_count", "otel.dropped_attributes_count"),
            ("dropped_events_count", "otel.dropped_events_count"),
            ("dropped_links_count", "otel.dropped_links_count"))


@dataclass
class Conversion:
    spans: list[Span] = field(default_factory=list)
    # (field path, reason) for each refused span, e.g. ("resourceSpans[0].scopeSpans[0].spans[3].traceId", "…")
    rejected: list[tuple[str, str]] = field(default_factory=list)


class _Refused(ValueError):
    def __init__(self, field_name: str, reason: str):
        super().__init__(reason)
        self.field_name = field_name


def _tags(attributes: Iterable[KeyValue]) -> dict[str, str]:
    tags = {}
    for kv in attributes:
        value = kv.value
        # Nearly every attribute is a non-empty string (all of Envoy's are): one lookup for those.
        tags[kv.key] = value.string_value or otlp_values.text(value)
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
        value = f"{json.dumps(event.name, ensure_ascii=False)}: {otlp_values.map_json(event.attributes)}"
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
    if remote := _remote(tags, kind):
        v2["remoteEndpoint"] = remote
    for counted, tag in _DROPPED:  # what the SDK left out, as mapping-to-non-otlp.md names it
        if dropped := getattr(span, counted):
            tags[tag] = str(dropped)
    status = _STATUS.get(span.status.code)
    if status:
        tags["otel.status_code"] = status
    if status == "ERROR":
        # Zipkin marks a failed span with an `error` tag holding the description; without
        # one, the span's own `error` attribute (Envoy's "true") or the spec's empty string.
        tags["error"] = span.status.message or tags.get("error", "")
    elif tags.get("error") == "false":
        del tags["error"]  # not failed: an `error` tag of any value would mark it as failed
    if span.events:
        v2["annotations"] = [_annotation(e) for e in span.events]
    if tags:
        v2["tags"] = tags
    return v2


_TYPED = ("int_value", "double_value", "bool_value")


def _typed(v2: dict[str, Any], attributes: Iterable[KeyValue], inherited: Iterable[KeyValue] = ()) -> dict[str, Any]:
    """The span as received, for Honeycomb: v2 with its numeric and boolean attributes typed
    (Zipkin's tags are strings; Honeycomb's columns need not be), the resource's (`inherited`)
    as well as its own. Envoy's attributes are all strings: then nothing is copied."""
    tags = v2.get("tags", {})
    typed = {kv.key: getattr(kv.value, kind) for kv in chain(inherited, attributes)
             # only where the tag is still the attribute (not `error` set from the status, nor dropped)
             if (kind := kv.value.WhichOneof("value")) in _TYPED and tags.get(kv.key) == otlp_values.text(kv.value)}
    return {**v2, "tags": {**tags, **typed}} if typed else v2


def _typed_value(value) -> Any:
    """An attribute value for Honeycomb: numbers and booleans as they are, the rest as text."""
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind in _TYPED else otlp_values.text(value)


def _span_events(span: OtlpSpan, v2: dict[str, Any], base_tags: dict[str, str]) -> list[tuple[int, dict[str, Any]]]:
    """The span's events and links as Honeycomb events (`meta.annotation_type` span_event or
    link), shaped as Honeycomb's own OTLP ingest shapes them: the resource and scope fields,
    then the event's or link's attributes; `error` when the span failed."""
    failed = span.status.code == Status.STATUS_CODE_ERROR
    made = []
    for kind, items in (("span_event", span.events), ("link", span.links)):
        for item in items:
            fields: dict[str, Any] = dict(base_tags)
            if kind == "span_event":
                fields["name"] = item.name
                when = item.time_unix_nano // 1000
            else:
                fields["trace.link.trace_id"] = item.trace_id.hex()
                fields["trace.link.span_id"] = item.span_id.hex()
                when = v2.get("timestamp", 0)  # a link has no time of its own: its span's start
            fields.update({kv.key: _typed_value(kv.value) for kv in item.attributes})
            fields["meta.annotation_type"] = kind
            if failed:
                fields["error"] = True
            made.append((when, fields))
    return made


def _remote(tags: dict[str, str], kind: str | None) -> dict[str, Any]:
    """The remote endpoint from the attributes the spec ranks: a name, an address, a port.
    Only a client or producer names its peer from the ranking (the spec's rule), any span by
    `peer.service`; a value that is an IP address is the endpoint's address, not its name."""
    if "peer.service" not in tags and kind not in ("CLIENT", "PRODUCER"):
        return {}
    remote: dict[str, Any] = {}
    for key in _REMOTE_NAME:
        value = tags.get(key)
        if not value:
            continue
        if (ip := canonical_ip(value)) is None:
            remote["serviceName"] = value
            break
        remote.setdefault(ip[0], ip[1])
    for key in _REMOTE_ADDRESS:
        if (value := tags.get(key)) and (ip := canonical_ip(value)) is not None:
            remote.setdefault(ip[0], ip[1])
            break
    port = next((tags[key] for key in _REMOTE_PORT if tags.get(key)), None)
    if remote and port is not None and port.isdigit() and 0 < int(port) < 65536:
        remote["port"] = int(port)
    return remote


def convert(request: ExportTraceServiceRequest) -> Conversion:
    """Every span of the request, each either converted or refused with its reason."""
    result = Conversion()
    trace_ids: dict[bytes, str] = {}  # a request's spans mostly share a few traces
    for r, resource_spans in enumerate(request.resource_spans):
        resource_tags = _tags(resource_spans.resource.attributes)
        resource_typed = [kv for kv in resource_spans.resource.attributes if kv.value.WhichOneof("value") in _TYPED]
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
                converted = Span(v2=v2, raw=_typed(v2, span.attributes, resource_typed), version=2)
                if span.events or span.links:
                    converted.span_events = _span_events(span, v2, base)
                result.spans.append(converted)
    return result
