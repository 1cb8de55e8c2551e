"""The WSGI app: Zipkin and OTLP ingest (collector.py), the Zipkin query API over the local store, the web UI, health, metrics."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from flask import Flask, Response, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.exceptions import HTTPException

from trace_proxy.browsers import cors_headers
from trace_proxy.collector import NOSNIFF, Collector
from trace_proxy.ingest import zipkin_json
from trace_proxy.metrics import Metrics, counter, gauge
from trace_proxy.store.query import QueryError, TraceQuery
from trace_proxy.settings import Settings
from trace_proxy.sinks import Sink
from trace_proxy.store.span_file import MEMORY, SpanFile
from trace_proxy.store.span_store import SpanStore
from trace_proxy.web.api import api_blueprint
from trace_proxy.web.pages import pages_blueprint
from trace_proxy.web.replies import present, required, text

log = logging.getLogger("trace_proxy")


@dataclass
class ProxyState:
    settings: Settings
    store: SpanStore
    metrics: Metrics
    sinks: list[Sink]
    closed: bool = False

    def queue_depths(self) -> dict[str, int]:
        """How much each forwarding sink holds right now: the numbers that must stay bounded."""
        return {s.name: s.pending() for s in self.sinks if hasattr(s, "pending")}

    def spools(self) -> dict[str, dict[str, int]]:
        """What each spooling sink holds: bytes, spans and bodies."""
        return {s.name: s.spool.stats() for s in self.sinks if hasattr(s, "spool")}

    def problems(self) -> list[str]:
        """What makes the proxy unhealthy right now (a dead sender thread), for /healthz."""
        return [problem for sink in self.sinks if hasattr(sink, "problems") for problem in sink.problems()]

    def close(self) -> None:
        """Close every sink once (SIGTERM's lifespan shutdown, then gunicorn's worker_exit)."""
        if self.closed:
            return
        self.closed = True
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
    span_file = SpanFile(settings.store_file, metrics) if settings.store_file != MEMORY else None
    store = SpanStore(settings.max_spans, settings.settle_seconds, settings.root_wait_seconds,
                      max_bytes=settings.max_store_bytes, metrics=metrics, span_file=span_file,
                      answered_settle_seconds=settings.answered_settle_seconds)
    store.load()
    state = ProxyState(settings, store, metrics, build_sinks(settings, store, metrics) + list(sinks or []))
    app.extensions["trace_proxy"] = state
    metrics.add_gauges(lambda: _state_gauges(state))
    app.register_blueprint(api_blueprint(store, settings))  # traceMany, dependencies, autocomplete*
    app.register_blueprint(pages_blueprint(store, settings.log_dir))  # the web UI at /
    # Span ingest answers in front of Flask (collector.py: the hot path); the URL map only
    # knows its paths so that other methods on them are answered 405 with Allow.
    collector = Collector(app.wsgi_app, settings, metrics, state.sinks)
    for rule in collector.url_rules():
        app.url_map.add(rule)
    app.wsgi_app = collector
    app.extensions["collector"] = collector  # asgi.py answers the same routes on its event loop

    allowed_origins = frozenset(settings.cors_origins)

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
        response.headers[NOSNIFF[0]] = NOSNIFF[1]
        response.headers.extend(cors_headers(request.headers.get("Origin", ""), allowed_origins))
        return response

    @app.get("/api/v2/services")
    def services():
        return jsonify(store.services())

    @app.get("/api/v2/remoteServices")
    def remote_services():
        return jsonify(store.remote_services(required("serviceName")))

    @app.get("/api/v2/spans")
    def span_names():
        service = present("serviceName")
        return jsonify(store.span_names(service) if service else [])

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
        if problems := state.problems():
            return jsonify({"status": "unhealthy", "problems": problems}), 503
        return jsonify({"status": "ok"})

    @app.get("/metrics")
    def prometheus_metrics():
        return Response(generate_latest(metrics.registry), mimetype=None, content_type=CONTENT_TYPE_LATEST)

    @app.get("/metrics.json")
    def metrics_json():
        # The same counts as one JSON document, for a quick look with curl and for the tests.
        snapshot = metrics.snapshot()
        snapshot["store"] = store.stats()
        snapshot["queues"] = state.queue_depths()
        snapshot["spools"] = state.spools()
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
    yield gauge("trace_proxy_store_bytes", "Bytes of span JSON in the local store.", stats["bytes"])
    yield gauge("trace_proxy_sink_queue_depth", "Spans or bodies a forwarding sink holds, not yet answered.",
                state.queue_depths(), "sink")
    spools = state.spools()
    yield gauge("trace_proxy_spool_bytes", "Bytes of batches in a sink's spool, waiting to be sent.",
                {name: spool["bytes"] for name, spool in spools.items()}, "sink")
    yield gauge("trace_proxy_spool_spans", "Spans in a sink's spool, waiting to be sent.",
                {name: spool["spans"] for name, spool in spools.items()}, "sink")
