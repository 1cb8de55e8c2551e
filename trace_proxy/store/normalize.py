"""The stored form of a span, as Zipkin keeps it: lower-case names, tag values as strings.

Zipkin lower-cases service and span names at ingest (lookups are case-insensitive that
way) and its spec types every tag value as a string; a client sending `"http.status_code":
500` reads back `"500"`. Other sinks keep the span as received: this only shapes the copy
the store keeps.
"""
from __future__ import annotations

import json
from typing import Any

_ENDPOINTS = ("localEndpoint", "remoteEndpoint")


def tag_string(value: Any) -> str:
    """A tag value as Zipkin would store it: JSON's spelling for numbers, booleans and null."""
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return json.dumps(value)  # true, false, null, 500, 1.5


def stored_form(span: dict[str, Any]) -> dict[str, Any]:
    """The span as the store keeps it; the same object when nothing needs to change."""
    changes: dict[str, Any] = {}
    name = span.get("name")
    if name and name != name.lower():
        changes["name"] = name.lower()
    for key in _ENDPOINTS:
        endpoint = span.get(key)
        service = endpoint.get("serviceName") if endpoint else None
        if service and service != service.lower():
            changes[key] = {**endpoint, "serviceName": service.lower()}
    tags = span.get("tags")
    if tags and not all(isinstance(v, str) for v in tags.values()):
        changes["tags"] = {k: tag_string(v) for k, v in tags.items()}
    return {**span, **changes} if changes else span
