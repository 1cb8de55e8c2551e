"""The trace proxy: a Zipkin collector that keeps spans locally and forwards them to Honeycomb.

A maintained, drop-in successor of the archived honeycomb-opentracing-proxy. `create_app`
builds the WSGI app; `python -m trace_proxy` / `trace-proxy` serve it with gunicorn.
"""
from trace_proxy.app import create_app

__all__ = ["create_app"]
