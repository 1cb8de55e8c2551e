"""The proxy as gunicorn serves it: one ASGI app on one event loop (server.py: uvicorn's worker).

The collector's POSTs (collector.py) are answered on the loop itself: the body is read as it
arrives, then parsed and handed to the sinks in one go, with no hand-off between threads.
Everything else (the query API, the web UI, /metrics, health) is the Flask app, run by
a2wsgi on a small thread pool. bench/proxy_forwarding.py measured the ways of serving the
same app at 40 requests/s of 100 spans: gunicorn's threaded WSGI worker passes each request
from its polling thread to a pool thread and back, which cost 0.1-0.35 ms at the median and
0.7-0.9 ms at the 90th percentile more than gunicorn's asgi worker, and that worker in turn
about 0.2 ms more at the median than uvicorn's. While a sink holds ingest back
(backpressure), requests are answered on threads instead, so the loop never waits.
"""
from __future__ import annotations

import asyncio
import io
from typing import Awaitable, Callable

from a2wsgi import WSGIMiddleware
from flask import Flask

from trace_proxy.browsers import cors_headers
from trace_proxy.collector import Collector, reply_headers

Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


class ProxyApp:
    """The ASGI callable gunicorn's worker serves: span POSTs here, the rest to Flask."""

    def __init__(self, flask_app: Flask, threads: int):
        self.flask_app = flask_app
        self.collector: Collector = flask_app.extensions["collector"]
        self.wsgi = WSGIMiddleware(flask_app, workers=threads)

    async def __call__(self, scope: dict, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        route = None
        if scope["type"] == "http" and scope["method"] == "POST":
            route = self.collector.routes.get(scope["path"])
        if route is None:
            await self.wsgi(scope, receive, send)
            return
        body, whole = await read_body(receive, self.collector.settings.max_body_bytes)
        headers = dict(scope["headers"])
        # The few keys of a WSGI environ the collector's routes read.
        environ = {
            "PATH_INFO": scope["path"],
            "CONTENT_TYPE": headers.get(b"content-type", b"").decode("latin-1"),
            "HTTP_CONTENT_ENCODING": headers.get(b"content-encoding", b"").decode("latin-1"),
            "HTTP_HOST": headers.get(b"host", b"").decode("latin-1"),
            "HTTP_ORIGIN": headers.get(b"origin", b"").decode("latin-1"),
            "HTTP_SEC_FETCH_SITE": headers.get(b"sec-fetch-site", b"").decode("latin-1"),
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
        }
        if self.collector.congested():
            # Waiting for room must not stop the loop: health, queries and the web UI go on.
            status, content_type, reply = await asyncio.get_running_loop().run_in_executor(
                None, self.collector.answer, route, environ)
        else:
            status, content_type, reply = self.collector.answer(route, environ)
        headers = [(name.encode(), value.encode("latin-1")) for name, value in
                   reply_headers(content_type, reply) + cors_headers(environ["HTTP_ORIGIN"], self.collector.allowed_origins)]
        if not whole:
            # The rest of an oversized body is never read: closing is the only way to stop it
            # (the server would otherwise read and discard it to the end, which may never come).
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": reply})


    async def lifespan(self, receive: Receive, send: Send) -> None:
        """Close the sinks when the server stops: uvicorn answers SIGTERM by stopping, then
        re-raises the signal, so the process dies by it and gunicorn's worker_exit never
        runs; the lifespan's shutdown comes before that, once no request is left."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                state = self.flask_app.extensions["trace_proxy"]
                await asyncio.get_running_loop().run_in_executor(None, state.close)
                await send({"type": "lifespan.shutdown.complete"})
                return


async def read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """(the request body, True), or (its first `limit` + 1 bytes, False) when it is longer:
    enough for the collector to answer 413 without ever holding more (an endless chunked
    body included)."""
    parts, size = [], 0
    while size <= limit:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        parts.append(chunk)
        size += len(chunk)
        if not message.get("more_body"):
            return b"".join(parts)[: limit + 1], size <= limit
    return b"".join(parts)[: limit + 1], False
