"""A stored trace as a file to download: Zipkin v2 JSON as stored, or OTLP JSON (the
protobuf JSON mapping, ids in hex) that any OpenTelemetry collector or this proxy reads back.

The OTLP form is the inverse of ingest/otlp_spans.py's mapping (OpenTelemetry's Zipkin
exporter rules): one resource per service, `kind` to SpanKind, tags to string attributes,
annotations to events, an `error` tag to an ERROR status."""
from __future__ import annotations

from collections import defaultdict
from typing import Callable, Sequence

from trace_proxy.store.query import service_name

SCOPE = "envoy-tracing trace proxy"
_KINDS = {"SERVER": 2, "CLIENT": 3, "PRODUCER": 4, "CONSUMER": 5}  # SpanKind; no kind: INTERNAL (1)
_STATUS_ERROR, _STATUS_UNSET = 2, 0
_RESOURCE_TAGS = ("service.name",)


def _attribute(key: str, value) -> dict:
    return {"key": key, "value": {"stringValue": str(value)}}


def _otlp_span(span: dict) -> dict:
    start = span.get("timestamp") or 0
    tags = span.get("tags") or {}
    out = {
        "traceId": span["traceId"].rjust(32, "0"),
        "spanId": span["id"],
        "name": span.get("name") or "",
        "kind": _KINDS.get(span.get("kind") or "", 1),
        "startTimeUnixNano": str(start * 1000),
        "endTimeUnixNano": str((start + (span.get("duration") or 0)) * 1000),
        "attributes": [_attribute(k, v) for k, v in sorted(tags.items()) if k not in _RESOURCE_TAGS],
        "events": [{"timeUnixNano": str((a.get("timestamp") or 0) * 1000), "name": a.get("value", "")}
                   for a in span.get("annotations") or []],
        "status": {"code": _STATUS_ERROR if "error" in tags else _STATUS_UNSET},
    }
    if span.get("parentId"):
        out["parentSpanId"] = span["parentId"]
    if tags.get("error"):
        out["status"]["message"] = str(tags["error"])
    return out


def otlp_json(spans: Sequence[dict]) -> dict:
    """ExportTraceServiceRequest in OTLP's JSON form: a resource per service name."""
    by_service: dict[str, list[dict]] = defaultdict(list)
    for span in spans:
        by_service[service_name(span) or "unknown_service"].append(_otlp_span(span))
    return {"resourceSpans": [
        {"resource": {"attributes": [_attribute("service.name", service)]},
         "scopeSpans": [{"scope": {"name": SCOPE}, "spans": members}]}
        for service, members in sorted(by_service.items())]}


def zipkin_json(spans: Sequence[dict]) -> list[dict]:
    return list(spans)


FORMATS: dict[str, Callable[[Sequence[dict]], object]] = {"zipkin": zipkin_json, "otlp": otlp_json}
