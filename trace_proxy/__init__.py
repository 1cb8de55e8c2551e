"""The trace proxy: a Zipkin collector that keeps spans locally and forwards them to Honeycomb.

A maintained, drop-in successor of the archived honeycomb-opentracing-proxy, arranged by a
span's life: ingest/ (decode and parse) → store/ (keep and query) and sinks/ (Honeycomb,
debug, downstream); app.py wires them into the WSGI app that server.py runs with gunicorn.
"""

__all__ = ["create_app"]


def __getattr__(name: str):
    # `create_app` is imported when first asked for, not with the package: what only needs
    # trace_proxy.settings (the tasks behind `inv`, for the ports) then skips Flask, protobuf and
    # the web UI, 0.15 s of every `inv` command's start.
    if name == "create_app":
        from trace_proxy.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
