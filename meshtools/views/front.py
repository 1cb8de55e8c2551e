"""Requests to the front of the mesh, whichever target serves it."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import requests


@dataclass(frozen=True)
class EchoReply:
    url: str
    status: int
    body: str
    request_id: str | None  # front-envoy returns it; every span of the trace carries it
    attempts: str | None = None  # x-envoy-attempt-count: how many tries front-envoy made

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def echo_url(front_url: str, name: str) -> str:
    # Every character outside the unreserved set is percent-encoded, "/" included, so a name
    # stays one path segment whatever it contains.
    return f"{front_url.rstrip('/')}/echo/{quote(name, safe='')}"


def echo(front_url: str, name: str, timeout: float = 30.0, session: requests.Session | None = None) -> EchoReply:
    """GET /echo/NAME; raises requests.RequestException when nothing answers."""
    url = echo_url(front_url, name)
    reply = (session or requests).get(url, timeout=timeout)
    return EchoReply(url, reply.status_code, reply.text, reply.headers.get("x-request-id"),
                     reply.headers.get("x-envoy-attempt-count"))
