"""A small trace made by the real OpenTelemetry SDK, exported with its OTLP/HTTP exporter.

No part of the encoding is ours: the SDK builds the spans, opentelemetry-exporter-otlp-proto-http
sends them as protobuf, and the JSON form is protobuf's own JSON mapping of the same
request with the two deviations OTLP prescribes (hex ids, integer enums).
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from google.protobuf import json_format
from opentelemetry import trace as api
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

START_NS = 1_700_000_000_000_000_000  # fixed times: durations are exact, no sleeping
SERVICE = "checkout"


@dataclass
class SdkTrace:
    trace_id: str  # 32 hex
    root: str  # span ids, 16 hex
    client: str
    internal: str


def make_trace(exporter) -> SdkTrace:
    """Root SERVER (250 ms) → CLIENT (120 ms, an event) and INTERNAL (30 ms, ERROR status)."""
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE, "deployment.environment": "test"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests.otel_client", "1.2.3")
    root = tracer.start_span("GET /cart", kind=SpanKind.SERVER, start_time=START_NS,
                             attributes={"http.request.method": "GET", "http.response.status_code": 200,
                                         "cart.items": 3, "cart.total": 12.5, "cart.gift": True,
                                         "cart.skus": ["a1", "b2"]})
    ctx = api.set_span_in_context(root)
    client = tracer.start_span("GET /price", kind=SpanKind.CLIENT, context=ctx, start_time=START_NS + 10_000_000,
                               attributes={"peer.service": "pricing"})
    client.add_event("retry", {"attempt": 2}, timestamp=START_NS + 60_000_000)
    client.end(end_time=START_NS + 130_000_000)
    internal = tracer.start_span("compute total", kind=SpanKind.INTERNAL, context=ctx, start_time=START_NS + 200_000_000)
    internal.set_status(Status(StatusCode.ERROR, "rounding failed"))
    internal.end(end_time=START_NS + 230_000_000)
    root.end(end_time=START_NS + 250_000_000)
    provider.shutdown()
    hexid = lambda span: f"{span.get_span_context().span_id:016x}"  # noqa: E731
    return SdkTrace(f"{root.get_span_context().trace_id:032x}", hexid(root), hexid(client), hexid(internal))


def send_protobuf(url: str, *, gzip: bool = False) -> SdkTrace:
    """The trace through the SDK's OTLP/HTTP protobuf exporter to `url` (…/v1/traces)."""
    exporter = _CheckedExporter(endpoint=url, compression=Compression.Gzip if gzip else Compression.NoCompression,
                                timeout=10)
    trace = make_trace(exporter)
    assert exporter.results and all(r == SpanExportResult.SUCCESS for r in exporter.results), exporter.results
    return trace


class _CheckedExporter(OTLPSpanExporter):
    """Records each export's result: the SDK swallows failures, a test must not."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.results = []

    def export(self, spans):
        result = super().export(spans)
        self.results.append(result)
        return result


def json_body() -> tuple[SdkTrace, bytes]:
    """The same trace as an OTLP/HTTP JSON body."""
    memory = InMemorySpanExporter()
    trace = make_trace(memory)
    message = json_format.MessageToDict(encode_spans(memory.get_finished_spans()), use_integers_for_enums=True)
    for resource_spans in message["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex().upper()  # OTLP JSON ids are hex, any case
    return trace, json.dumps(message).encode()
