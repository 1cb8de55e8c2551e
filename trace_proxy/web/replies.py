"""Plain-text replies: Zipkin clients take an HTML error page for another server."""
from __future__ import annotations

from flask import Response, abort, request


def text(status: int, reason: str) -> Response:
    return Response(reason + "\n", status=status, mimetype="text/plain")


def required(name: str) -> str:
    value = request.args.get(name, "").strip()
    if not value:
        abort(text(400, f"{name} is required"))
    return value
