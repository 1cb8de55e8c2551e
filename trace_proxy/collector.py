"""The collector: POST /api/v2/spans, /api/v1/spans (Zipkin) and /v1/traces (OTLP/HTTP).

These three are the proxy's hot path, so they answer as a plain WSGI layer in front of the
Flask app instead of as Flask views. At a steady 40 requests/s of 100 spans
(bench/proxy_forwarding.py) Flask's request context, routing and hooks cost a third of a
millisecond per request, as much as validating half the spans. Every other request
(the query API, the web UI, /metrics, health, and other methods on these paths, answered
405 from Flask's URL map) goes on to Flask.
"""
from __future__ import annotations

import logging
import time
from http import HTTPStatus
from typing import Callable, Iterable

from werkzeug.routing import Rule
from werkzeug.wsgi import get_input_stream

from trace_proxy.browsers import cors_headers, cross_site_reason
from trace_proxy.ingest import zipkin
from trace_proxy.ingest.body import IngestError
from trace_proxy.ingest.zipkin_json import SpanError
from trace_proxy.metrics import Metrics
from trace_proxy.settings import Settings
from trace_proxy.sinks import Batch, Sink

log = logging.getLogger("trace_proxy")
TEXT = "text/plain; charset=utf-8"
ENDPOINT = "collector"  # the Flask URL map's name for these paths (it only answers 405 for them)

# status, content type ("" for none), body
Reply = tuple[int, str, bytes]


# On every response (app.py adds it to Flask's): no browser reads a reply as another type.
NOSNIFF = ("x-content-type-options", "nosniff")


def reply_headers(content_type: str, body: bytes) -> list[tuple[str, str]]:
    """A reply's headers, lower-case as ASGI wants them (WSGI does not mind)."""
    headers = [("content-length", str(len(body))), NOSNIFF]
    if content_type:
        headers.append(("content-type", content_type))
    return headers


class Collector:
    def __init__(self, app: Callable, settings: Settings, metrics: Metrics, sinks: list[Sink]):
        self.app = app  # the Flask app's WSGI callable: everything that is not a POST here
        self.settings = settings
        self.metrics = metrics
        self.sinks = sinks
        self.allowed_origins = frozenset(settings.cors_origins)
        self.routes: dict[str, Callable[[dict], Reply]] = {
            "/api/v2/spans": lambda environ: self.zipkin(environ, 2),
            "/api/v1/spans": lambda environ: self.zipkin(environ, 1),
            "/v1/traces": self.otlp,
        }

    def congested(self) -> bool:
        """A sink may hold the next delivery back (backpressure): asgi.py answers it on a thread then."""
        return any(sink.congested() for sink in self.sinks if hasattr(sink, "congested"))

    def url_rules(self) -> list[Rule]:
        """Rules for Flask's URL map, so that other methods on these paths get 405 with Allow."""
        return [Rule(path, methods=["POST"], endpoint=ENDPOINT) for path in self.routes]

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        route = self.routes.get(path) if environ.get("REQUEST_METHOD") == "POST" else None
        if route is None:
            return self.app(environ, start_response)
        status, content_type, body = self.answer(route, environ)
        headers = reply_headers(content_type, body) + cors_headers(environ.get("HTTP_ORIGIN", ""), self.allowed_origins)
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        return [body]

    def answer(self, route: Callable[[dict], Reply], environ: dict) -> Reply:
        """Run `route` on a WSGI environ (or the few keys of one the routes read), timed."""
        started = time.perf_counter()
        path = environ["PATH_INFO"]
        try:
            if refused := cross_site_reason(environ, self.allowed_origins):
                status, content_type, body = self.reject(path, 403, refused, "cross_site")
            else:
                status, content_type, body = route(environ)
        except Exception:  # a bug here must still answer like the rest of the proxy: one line of text
            log.exception("POST %s failed", path)
            status, content_type, body = 500, TEXT, b"Internal Server Error: POST " + path.encode()[:200] + b"\n"
        self.metrics.request_seconds.labels("POST", path, str(status)).observe(time.perf_counter() - started)
        return status, content_type, body

    def reject(self, path: str, status: int, reason: str, code: str = "") -> Reply:
        self.metrics.reject(status, code)
        log.info("rejected %s %s: %s", path, status, reason)
        return status, TEXT, (reason + "\n").encode("utf-8", "replace")  # a reason may quote a lone surrogate

    def deliver(self, batch: Batch, encoding: str) -> None:
        """`encoding`: what the spans came as (json_v2, proto_v2, otlp_proto, ...), counted for /metrics."""
        self.metrics.incr("received", len(batch.spans), sink=encoding, reason="spans")
        for sink in self.sinks:
            try:
                sink.accept(batch)
            except Exception:  # a broken sink must not lose the spans for the others
                self.metrics.incr("dropped", len(batch.spans), sink=getattr(sink, "name", "?"), reason="error")
                log.exception("sink %s failed", getattr(sink, "name", sink))

    def zipkin(self, environ: dict, version: int) -> Reply:
        self.metrics.incr("received", reason="requests")
        try:
            body, parsed = zipkin.parse_request(
                get_input_stream(environ),
                content_type=environ.get("CONTENT_TYPE"),
                content_encoding=environ.get("HTTP_CONTENT_ENCODING"),
                limit=self.settings.max_body_bytes,
                version=version,
            )
        except IngestError as exc:
            return self.reject(environ["PATH_INFO"], exc.status, exc.reason, exc.code)
        except SpanError as exc:
            return self.reject(environ["PATH_INFO"], 400, str(exc), "invalid_span")
        self.deliver(Batch(parsed, version, body.raw, body.content_type, body.content_encoding, size=body.size),
                     zipkin.encoding_name(body.content_type, version))
        return 202, "", b""

    def otlp(self, environ: dict) -> Reply:
        """OTLP/HTTP (protobuf or JSON): replies as the specification prescribes, in the request's encoding."""
        # Imported on the first OTLP request, as Zipkin's protobuf is (ingest/zipkin.py): a proxy
        # that only ever sees Zipkin JSON, the mesh's default, starts without loading protobuf
        # and OpenTelemetry's messages (25 ms of its start, on the local mesh's critical path).
        from trace_proxy.ingest import otlp_spans, otlp_wire

        self.metrics.incr("received", reason="requests")
        content_type = environ.get("CONTENT_TYPE")
        encoding = otlp_wire.reply_encoding(content_type)
        try:
            body = otlp_wire.decode(get_input_stream(environ), content_type=content_type,
                                    content_encoding=environ.get("HTTP_CONTENT_ENCODING"),
                                    limit=self.settings.max_body_bytes)
        except IngestError as exc:
            self.reject(environ["PATH_INFO"], exc.status, exc.reason, exc.code)
            return exc.status, encoding, otlp_wire.failure(encoding, exc.status, exc.reason)
        converted = otlp_spans.convert(body.request)
        refused = converted.rejected
        if refused and not converted.spans:
            reason = f"every span was refused: {refused[0][1]}" + (f" (and {len(refused) - 1} more)" if len(refused) > 1 else "")
            self.reject(environ["PATH_INFO"], 400, reason, "invalid_span")
            return 400, encoding, otlp_wire.failure(encoding, 400, reason, refused[:100])
        if converted.spans:
            # Sinks that mirror bodies get Zipkin v2 JSON: what a downstream Zipkin collector reads.
            self.deliver(Batch(converted.spans, 2, b"", otlp_wire.JSON, "", mirror_as_v2=True, size=body.size),
                         "otlp_proto" if encoding == otlp_wire.PROTOBUF else "otlp_json")
        message = ""
        if refused:
            self.metrics.incr("dropped", len(refused), sink="ingest", reason="invalid_span")
            message = f"{len(refused)} spans refused, the first: {refused[0][0]}: {refused[0][1]}"
            log.info("partial success on %s: %s", environ["PATH_INFO"], message)
        return 200, encoding, otlp_wire.success(encoding, len(refused), message)
