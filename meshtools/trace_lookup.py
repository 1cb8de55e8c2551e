"""Find the trace of one request: front-envoy returns its x-request-id, every span carries it."""
from __future__ import annotations

import time

from meshtools.zipkin_client import ZipkinClient

REQUEST_ID_TAG = "guid:x-request-id"
SPANS_PER_ECHO = 12  # front-envoy, service1 ingress, 5 × (service1 egress, service2 ingress)


def request_id_query(request_id: str) -> str:
    return f"{REQUEST_ID_TAG}={request_id}"


def find_trace(client: ZipkinClient, request_id: str, spans: int = SPANS_PER_ECHO, timeout: float = 10.0) -> list[dict]:
    """The request's trace once it has `spans` spans, or what arrived by the deadline.

    Envoy flushes spans in small batches, so a trace fills up over a second or so.
    """
    deadline = time.monotonic() + timeout
    found: list[dict] = []
    while True:
        traces = client.traces(annotation_query=request_id_query(request_id), limit=1)
        found = traces[0] if traces else []
        if len(found) >= spans or time.monotonic() >= deadline:
            return found
        time.sleep(0.1)
