"""The Flask app that runs as service1 and service2 (the seed's demo service).

Tracing needs nothing from the app but forwarding the trace headers on its outbound
calls; the Envoy sidecars record every hop.
"""
from __future__ import annotations

import json
import os
import random
import socket
import sys
import time

import requests
import requests.adapters
from flask import Flask, Response, jsonify, request
from markupsafe import escape
from werkzeug.routing import PathConverter

from service import gunicorn_conf

# Headers Envoy's tracers and request ids live in; forwarding them is the whole
# instrumentation (see Envoy's tracing docs on header propagation).
TRACE_HEADERS = (
    "x-request-id",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "b3",
    "x-ot-span-context",
    "traceparent",
    "tracestate",
    "uber-trace-id",
)

STAGES = 5  # service1 calls service2's /stage/0 .. /stage/4

DEFAULTS = {
    "SERVICE_NAME": "1",
    "EGRESS_URL": "http://localhost:9000",
    "HOSTNAME": socket.gethostname(),
    "SLOW_STAGE": 3,
    "SLOW_STAGE_MIN_SECONDS": 0.3,
    "SLOW_STAGE_JITTER_SECONDS": 3.0,
    # A backstop just above the egress route's 5 s timeout: Envoy answers a stage that hangs
    # first (504, in the trace); this only fires if the sidecar itself stops answering.
    "UPSTREAM_TIMEOUT_SECONDS": 6.0,
}

PAGE = """<img src="https://raw.githubusercontent.com/honeycombio/examples/master/_internal/envoy.png" height="100" />
<pre><code>Hello {name}!

Served by:
service {service}
pod: {pod}</code></pre>
"""


class AnyText(PathConverter):
    regex = r"[^/][\s\S]*?"


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app: defaults, then the environment, then `test_config`."""
    app = Flask(__name__)
    # Werkzeug's `path` converter stops at a newline; a name may hold any character.
    app.url_map.converters["anytext"] = AnyText
    app.config.from_mapping(DEFAULTS)
    # Unprefixed names, as the seed's container environment had them (SERVICE_NAME, HOSTNAME).
    app.config.update({key: os.environ[key] for key in DEFAULTS if key in os.environ})
    if test_config:
        app.config.update(test_config)
    for key, default in DEFAULTS.items():
        app.config[key] = type(default)(app.config[key])

    # Keep-alive to the egress sidecar, with a connection for each of gunicorn's threads:
    # requests' default pool of 10 would open and drop connections under load.
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=gunicorn_conf.threads))

    def log_event(**fields) -> None:
        # JSON lines on stdout: what `kubectl logs` and the local log files show.
        print(json.dumps({"service": app.config["SERVICE_NAME"], "pod": app.config["HOSTNAME"], **fields}), flush=True)

    def call_stages() -> Response | None:
        forwarded = {h: request.headers[h] for h in TRACE_HEADERS if h in request.headers}
        base = app.config["EGRESS_URL"].rstrip("/")
        for stage in range(STAGES):
            url = f"{base}/stage/{stage}"
            try:
                reply = session.get(url, headers=forwarded, timeout=app.config["UPSTREAM_TIMEOUT_SECONDS"])
            except requests.RequestException as exc:
                reason = f"stage {stage}: {type(exc).__name__}"
                log_event(error="upstream call failed", url=url, reason=str(exc))
                return jsonify(error="upstream call failed", reason=reason), 502
            if reply.status_code >= 400:
                log_event(error="upstream answered an error", url=url, status=reply.status_code)
                return jsonify(error="upstream answered an error", reason=f"stage {stage}: {reply.status_code}"), 502
        return None

    @app.get("/echo/<anytext:name>")
    def echo(name: str):
        if name == "chris":
            # The seed's deliberate error path: visible as a 500 in every trace view.
            log_event(error="too many chrises", name=name)
            return jsonify(error="too many chrises"), 500
        if app.config["SERVICE_NAME"] == "2":
            return jsonify(upstream="healthy")
        failure = call_stages()
        if failure is not None:
            return failure
        log_event(path=request.path, status=200)
        page = PAGE.format(name=escape(name), service=escape(app.config["SERVICE_NAME"]), pod=escape(app.config["HOSTNAME"]))
        return Response(page, mimetype="text/html")

    @app.get("/stage/<int:stage>")
    def stage(stage: int):
        if stage == app.config["SLOW_STAGE"]:
            # The seed's slow stage: what a trace view should make obvious.
            time.sleep(app.config["SLOW_STAGE_MIN_SECONDS"] + random.uniform(0, app.config["SLOW_STAGE_JITTER_SECONDS"]))
        return jsonify(upstream="healthy")

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok", service=app.config["SERVICE_NAME"])

    return app
