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
from datetime import datetime, timezone

import requests
import requests.adapters
from flask import Flask, Response, g, has_request_context, jsonify, request
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


def utc_timestamp() -> str:
    """Now, as Envoy's access log writes it: 2026-11-26T18:27:45.123Z (logs merge in time order)."""
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def trace_id(headers) -> str | None:
    """The request's trace id from whichever propagation headers it came with (B3, W3C)."""
    if headers.get("x-b3-traceid"):
        return headers["x-b3-traceid"]
    if headers.get("b3"):
        return headers["b3"].split("-")[0]
    parent = headers.get("traceparent", "").split("-")
    return parent[1] if len(parent) >= 2 and parent[1] else None


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
        # JSON lines on stdout: what `kubectl logs` and the local log files show. Each carries
        # the request's x-request-id and trace id, as every span and Envoy access log line does,
        # so `inv logs --request ID` and `inv traces --id ID --logs` find it.
        print(json.dumps({
            "time": utc_timestamp(),
            "service": app.config["SERVICE_NAME"],
            "pod": app.config["HOSTNAME"],
            "request_id": request.headers.get("x-request-id") if has_request_context() else None,
            "trace_id": trace_id(request.headers) if has_request_context() else None,
            **fields,
        }), flush=True)

    @app.before_request
    def start_clock():
        g.started = time.monotonic()

    @app.after_request
    def log_request(response: Response) -> Response:
        # One line per request served, as an access log: health checks would drown the rest.
        if request.path != "/healthz":
            log_event(method=request.method, path=request.path, status=response.status_code,
                      duration_ms=round((time.monotonic() - g.started) * 1000, 1))
        return response

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
