"""Plain-text replies: Zipkin clients take an HTML error page for another server."""
from __future__ import annotations

from flask import Response, abort, request


def text(status: int, reason: str) -> Response:
    return Response(reason + "\n", status=status, mimetype="text/plain")


def present(name: str) -> str:
    """A query parameter that must be given but may be empty, as Zipkin's are: Zipkin answers
    an empty service name or autocomplete key with an empty list, not an error."""
    value = request.args.get(name)
    if value is None:
        abort(text(400, f"{name} is required"))
    return value.strip()


def required(name: str) -> str:
    value = request.args.get(name, "").strip()
    if not value:
        abort(text(400, f"{name} is required"))
    return value
