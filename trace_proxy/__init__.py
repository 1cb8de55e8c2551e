"""The trace proxy: a Zipkin collector that keeps spans locally and forwards them to Honeycomb.

A maintained, drop-in successor of the archived honeycomb-opentracing-proxy, arranged by a
span's life: ingest/ (decode and parse) → store/ (keep and query) and sinks/ (Honeycomb,
debug, downstream); app.py wires them into the WSGI app that server.py runs with gunicorn.
"""
from trace_proxy.app import create_app

__all__ = ["create_app"]
