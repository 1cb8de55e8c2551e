"""Serve the proxy with gunicorn: one worker process (the store lives in its memory) running
the ASGI app of asgi.py on uvicorn's event loop, Flask's routes on a small thread pool."""
from __future__ import annotations

import gc
import logging

from gunicorn.app.base import BaseApplication
from uvicorn_worker import UvicornWorker

from trace_proxy.settings import Settings

# Seconds an idle connection stays open. Envoy reuses its connection to the proxy between span
# flushes; a flush that crossed the proxy's close came back as Envoy's own 503 and its spans
# were dropped, so the Envoy configs close idle connections to the proxy sooner than this
# (manifests/base/envoy: the trace_proxy cluster's idle_timeout). Short, so that a stopping
# proxy is not kept waiting by a client's idle connection.
KEEPALIVE_SECONDS = 2


class ProxyWorker(UvicornWorker):
    """uvicorn's worker for gunicorn, its C parts named rather than guessed. With uvloop and
    httptools the median at a steady 40 requests/s of 100 spans was 1.6 ms against 1.8 ms on
    gunicorn's own asgi worker (7 interleaved runs of bench/proxy_forwarding.py), and a
    stopping proxy closes idle connections at once where that worker waited out their
    keep-alive. The lifespan's shutdown closes the sinks (asgi.py: worker_exit never runs
    after a SIGTERM)."""
    CONFIG_KWARGS = {"loop": "uvloop", "http": "httptools", "lifespan": "on"}


class ProxyServer(BaseApplication):
    def __init__(self, settings: Settings):
        self.settings = settings
        self.app = None
        super().__init__()

    def load_config(self) -> None:
        host = f"[{self.settings.host}]" if ":" in self.settings.host else self.settings.host
        ports = [self.settings.port]
        if self.settings.otlp_port and self.settings.otlp_port != self.settings.port:
            ports.append(self.settings.otlp_port)  # the same app: Zipkin and OTLP on both
        self.cfg.set("bind", [f"{host}:{port}" for port in ports])
        self.cfg.set("workers", 1)
        self.cfg.set("worker_class", f"{__name__}.ProxyWorker")
        self.cfg.set("proc_name", "trace-proxy")
        # Time to drain the sinks on SIGTERM (their own deadline) and a margin to exit after.
        self.cfg.set("graceful_timeout", int(self.settings.shutdown_seconds) + 5)
        self.cfg.set("keepalive", KEEPALIVE_SECONDS)
        self.cfg.set("worker_exit", _close_sinks)
        if "control_socket_disable" in self.cfg.settings:
            # gunicorn >= 25.1 would otherwise open a control socket at a fixed path in $HOME,
            # which a second proxy (or the services' gunicorn) would fight over.
            self.cfg.set("control_socket_disable", True)

    def load(self):
        # Runs in the worker after fork, so the sinks' threads belong to the serving process.
        from trace_proxy.app import create_app
        from trace_proxy.asgi import ProxyApp

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        # urllib3 would otherwise log a line per failed batch during an outage; the sink's
        # own (throttled) warning already says what failed.
        logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
        self.app = ProxyApp(create_app(self.settings), self.settings.threads)
        tune_gc()
        return self.app


def tune_gc() -> None:
    """Collect cyclic garbage less often: every span is a few fresh dicts, and the store keeps
    ~20,000 of them alive, so the default thresholds ran a collection every few requests and
    walked the whole store in each full one (a fifth of the parse-and-store time in
    bench/proxy_forwarding.py's profile). Reference counting still frees everything without
    a cycle at once; what the app built at start is frozen out of every collection."""
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def _close_sinks(server, worker) -> None:
    app = getattr(server.app, "app", None)  # the ProxyApp load() made, in the worker
    if app is not None:
        app.flask_app.extensions["trace_proxy"].close()


def serve(settings: Settings) -> None:
    ProxyServer(settings).run()
