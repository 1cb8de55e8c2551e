"""The WSGI app: Zipkin and OTLP ingest, the Zipkin query API over the local store, the web UI, health, metrics."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from flask import Flask, Response, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.exceptions import HTTPException

from trace_proxy.ingest import otlp_spans, otlp_wire, zipkin, zipkin_json
from trace_proxy.ingest.body import IngestError
from trace_proxy.metrics import Metrics, counter, gauge
from trace_proxy.store.query import QueryError, TraceQuery
from trace_proxy.settings import Settings
from trace_proxy.sinks import Batch, Sink
from trace_proxy.store.span_store import SpanStore
from trace_proxy.web.api import api_blueprint
from trace_proxy.web.pages import pages_blueprint
from trace_proxy.web.replies import required, text

log = logging.getLogger("trace_proxy")


@dataclass
class ProxyState:
    settings: Settings
    store: SpanStore
    metrics: Metrics
    sinks: list[Sink]

    def close(self) -> None:
        for sink in self.sinks:
            try:
                sink.close()
            except Exception:  # one sink failing to flush must not stop the others
                log.exception("closing sink %s failed", getattr(sink, "name", sink))


def build_sinks(settings: Settings, store: SpanStore, metrics: Metrics) -> list[Sink]:
    sinks: list[Sink] = [store]
    if settings.writekey:
        from trace_proxy.sinks.honeycomb import HoneycombSink

        sinks.append(HoneycombSink(settings, metrics))
    if settings.debug:
        from trace_proxy.sinks.debug import DebugSink

        sinks.append(DebugSink())
    if settings.downstream:
        from trace_proxy.sinks.downstream import DownstreamSink

        sinks.append(DownstreamSink(settings.downstream, metrics, queue_size=settings.downstream_queue))
    return sinks


def create_app(settings: Settings | None = None, sinks: list[Sink] | None = None) -> Flask:
    """Build the proxy. `sinks` (tests) are added after the store and configured sinks."""
    settings = settings or Settings.from_env()
    app = Flask("trace_proxy")
    app.json.sort_keys = False
    metrics = Metrics()
    store = SpanStore(settings.max_spans, settings.settle_seconds, settings.root_wait_seconds)
    state = ProxyState(settings, store, metrics, build_sinks(settings, store, metrics) + list(sinks or []))
    app.extensions["trace_proxy"] = state
    metrics.add_gauges(lambda: _state_gauges(state))
    app.register_blueprint(api_blueprint(store, settings))  # traceMany, dependencies, autocomplete*
    app.register_blueprint(pages_blueprint(store))  # the web UI at /

    @app.before_request
    def start_timer():
        g.started = time.perf_counter()

    @app.after_request
    def observe_latency(response: Response) -> Response:
        started = g.get("started")
        if started is not None:
            route = request.url_rule.rule if request.url_rule else "unmatched"
            metrics.request_seconds.labels(request.method, route, str(response.status_code)).observe(
                time.perf_counter() - started)
        return response

    def reject(status: int, reason: str, code: str = "") -> Response:
        metrics.reject(status, code)
        log.info("rejected %s %s: %s", request.path, status, reason)
        return text(status, reason)

    def ingest_spans(version: int) -> Response:
        metrics.incr("received", reason="requests")
        try:
            body, parsed = zipkin.parse_request(
                request.stream,
                content_type=request.headers.get("Content-Type"),
                content_encoding=request.headers.get("Content-Encoding"),
                limit=settings.max_body_bytes,
                version=version,
            )
        except IngestError as exc:
            return reject(exc.status, exc.reason, exc.code)
        except zipkin_json.SpanError as exc:
            return reject(400, str(exc), "invalid_span")
        deliver(Batch(parsed, version, body.raw, body.content_type, body.content_encoding),
                zipkin.encoding_name(body.content_type, version))
        return Response(status=202)

    def deliver(batch: Batch, encoding: str) -> None:
        """`encoding`: what the spans came as (json_v2, proto_v2, otlp_proto, ...), counted for /metrics."""
        metrics.incr("received", len(batch.spans), sink=encoding, reason="spans")
        for sink in state.sinks:
            try:
                sink.accept(batch)
            except Exception:  # a broken sink must not lose the spans for the others
                metrics.incr("dropped", len(batch.spans), sink=getattr(sink, "name", "?"), reason="error")
                log.exception("sink %s failed", getattr(sink, "name", sink))

    @app.post("/v1/traces")
    def post_otlp():
        """OTLP/HTTP (protobuf or JSON): replies as the specification prescribes, in the request's encoding."""
        metrics.incr("received", reason="requests")
        encoding = otlp_wire.reply_encoding(request.headers.get("Content-Type"))

        def otlp_reply(status: int, body: bytes) -> Response:
            return Response(body, status=status, content_type=encoding)

        try:
            body = otlp_wire.decode(request.stream, content_type=request.headers.get("Content-Type"),
                                    content_encoding=request.headers.get("Content-Encoding"),
                                    limit=settings.max_body_bytes)
        except IngestError as exc:
            reject(exc.status, exc.reason, exc.code)
            return otlp_reply(exc.status, otlp_wire.failure(encoding, exc.status, exc.reason))
        converted = otlp_spans.convert(body.request)
        refused = converted.rejected
        if refused and not converted.spans:
            reason = f"every span was refused: {refused[0][1]}" + (f" (and {len(refused) - 1} more)" if len(refused) > 1 else "")
            reject(400, reason, "invalid_span")
            return otlp_reply(400, otlp_wire.failure(encoding, 400, reason, refused[:100]))
        if converted.spans:
            # Sinks that mirror bodies get Zipkin v2 JSON: what a downstream Zipkin collector reads.
            deliver(Batch(converted.spans, 2, b"", otlp_wire.JSON, "", mirror_as_v2=True),
                    "otlp_proto" if encoding == otlp_wire.PROTOBUF else "otlp_json")
        message = ""
        if refused:
            metrics.incr("dropped", len(refused), sink="ingest", reason="invalid_span")
            message = f"{len(refused)} spans refused, the first: {refused[0][0]}: {refused[0][1]}"
            log.info("partial success on %s: %s", request.path, message)
        return otlp_reply(200, otlp_wire.success(encoding, len(refused), message))

    @app.post("/api/v2/spans")
    def post_v2():
        return ingest_spans(2)

    @app.post("/api/v1/spans")
    def post_v1():
        return ingest_spans(1)

    @app.get("/api/v2/services")
    def services():
        return jsonify(store.services())

    @app.get("/api/v2/remoteServices")
    def remote_services():
        return jsonify(store.remote_services(required("serviceName")))

    @app.get("/api/v2/spans")
    def span_names():
        return jsonify(store.span_names(required("serviceName")))

    @app.get("/api/v2/traces")
    def traces():
        try:
            query = TraceQuery.from_args(request.args)
        except QueryError as exc:
            return text(400, str(exc))
        return jsonify(store.traces(query))

    @app.get("/api/v2/trace/<trace_id>")
    def trace(trace_id: str):
        try:
            tid = zipkin_json.normalize_trace_id(trace_id)
        except zipkin_json.SpanError:
            return text(404, f"no trace {trace_id[:64]!r}: a trace id is 1 to 32 hex characters")
        found = store.trace(tid)
        if found is None:
            return text(404, f"trace {tid} not found")
        return jsonify(found)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        # Flask's default error pages are HTML, which Zipkin clients (ours included) take
        # for another web server on the wrong port; every error here is one line of text.
        reply = text(exc.code or 500, f"{exc.name}: {request.method} {request.path[:200]}")
        reply.headers.extend((k, v) for k, v in exc.get_headers() if k == "Allow")
        return reply

    @app.get("/healthz")
    def healthz():
        return jsonify({"status": "ok"})

    @app.get("/metrics")
    def prometheus_metrics():
        return Response(generate_latest(metrics.registry), mimetype=None, content_type=CONTENT_TYPE_LATEST)

    @app.get("/metrics.json")
    def metrics_json():
        # The same counts as one JSON document, for a quick look with curl and for the tests.
        snapshot = metrics.snapshot()
        snapshot["store"] = store.stats()
        # How much each forwarding sink holds right now: the numbers that must stay bounded.
        snapshot["queues"] = {s.name: s.pending() for s in state.sinks if hasattr(s, "pending")}
        return jsonify(snapshot)

    return app


def _state_gauges(state: ProxyState):
    stats = state.store.stats()
    yield gauge("trace_proxy_store_spans", "Spans in the local store.", stats["spans"])
    yield gauge("trace_proxy_store_traces", "Traces in the local store.", stats["traces"])
    yield counter("trace_proxy_store_evicted_spans", "Spans evicted from the full store, whole traces at a time.",
                  stats["evicted_spans"])
    yield counter("trace_proxy_store_late_spans_dropped", "Spans of already evicted traces, not stored.",
                  stats["late_spans_dropped"])
    yield gauge("trace_proxy_sink_queue_depth", "Spans or bodies a forwarding sink holds, not yet answered.",
                {s.name: s.pending() for s in state.sinks if hasattr(s, "pending")}, "sink")
