"""The OTLP twin of the benchmarks' Zipkin span batches: the same Envoy-shaped spans as an
OTLP/HTTP protobuf ExportTraceServiceRequest (one resource per service, as each Envoy's
OpenTelemetry tracer sends them), so both ingest paths are measured on equal work."""
from __future__ import annotations

import json

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

CONTENT_TYPE = "application/x-protobuf"
PATH = "/v1/traces"
_KINDS = {"SERVER": Span.SPAN_KIND_SERVER, "CLIENT": Span.SPAN_KIND_CLIENT}


def _span(z: dict) -> Span:
    span = Span(trace_id=bytes.fromhex(z["traceId"].zfill(32)), span_id=bytes.fromhex(z["id"]), name=z["name"],
                kind=_KINDS[z["kind"]], start_time_unix_nano=z["timestamp"] * 1000,
                end_time_unix_nano=(z["timestamp"] + z["duration"]) * 1000,
                attributes=[KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in z["tags"].items()])
    if z.get("parentId"):
        span.parent_span_id = bytes.fromhex(z["parentId"])
    return span


def from_spans(zipkin: list[dict]) -> bytes:
    """Zipkin v2 spans as the OTLP request Envoy's OpenTelemetry tracer would send."""
    by_service: dict[str, list[Span]] = {}
    for z in zipkin:
        by_service.setdefault(z["localEndpoint"]["serviceName"], []).append(_span(z))
    request = ExportTraceServiceRequest()
    for service, spans in by_service.items():
        resource = ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])
        resource.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value=service)))
        request.resource_spans.append(resource)
    return request.SerializeToString()


def from_zipkin(body: bytes) -> bytes:
    """The same for a Zipkin v2 JSON body."""
    return from_spans(json.loads(body))
