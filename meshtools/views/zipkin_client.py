"""A small client for Zipkin's v2 query API, as served by the trace proxy (or any Zipkin)."""
from __future__ import annotations

from urllib.parse import quote

import requests

from meshtools.shared.topology import TRACE_PROXY_PORT
from meshtools.views.urls import shorten

DEFAULT_TIMEOUT = 5.0
NOT_ZIPKIN = f"is --url a Zipkin API (the trace proxy, port {TRACE_PROXY_PORT})?"


class TraceProxyError(Exception):
    """Something a user can act on; the message is one sentence."""


class TraceNotFound(TraceProxyError):
    """No such trace: a lookup by trace id may still find it by another key."""


class ZipkinClient:
    def __init__(self, base_url: str, timeout: float = DEFAULT_TIMEOUT, session: requests.Session | None = None):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()

    def _get(self, path: str, params: dict | None = None):
        url = f"{self.base_url}{path}"
        where = shorten(self.base_url)
        try:
            response = self.session.get(url, params=params, timeout=self.timeout)
        except requests.RequestException as exc:
            raise TraceProxyError(
                f"Cannot reach the trace proxy at {where} ({type(exc).__name__}); "
                "start the mesh with `inv local.up` (or `inv forward` for the cluster) or pass --url."
            ) from None
        if "html" in response.headers.get("content-type", ""):
            # A web page (another server's 404, a UI): the wrong port, not a missing trace.
            raise TraceProxyError(f"{where} answered HTTP {response.status_code} with a web page, not Zipkin JSON; "
                                  f"{NOT_ZIPKIN}")
        if response.status_code == 404 and path.startswith("/api/v2/trace/"):
            raise TraceNotFound(f"No trace {shorten(path.rsplit('/', 1)[-1], 40)} at {where}; "
                                "`inv traces --limit 10` lists recent ones.")
        if response.status_code >= 400:
            reason = response.text.strip().splitlines()[0][:200] if response.text.strip() else response.reason
            raise TraceProxyError(f"The trace proxy at {where} answered {response.status_code} to {path}: {reason}")
        try:
            return response.json()
        except ValueError:
            raise TraceProxyError(f"{shorten(url)} did not answer JSON; {NOT_ZIPKIN}") from None

    def traces(
        self,
        *,
        service_name: str | None = None,
        span_name: str | None = None,
        annotation_query: str | None = None,
        min_duration_us: int | None = None,
        max_duration_us: int | None = None,
        end_ts_ms: int | None = None,
        lookback_ms: int | None = None,
        limit: int | None = None,
    ) -> list[list[dict]]:
        """Traces (each a list of v2 spans), newest first, like Zipkin's GET /api/v2/traces."""
        params = {
            "serviceName": service_name,
            "spanName": span_name,
            "annotationQuery": annotation_query,
            "minDuration": min_duration_us,
            "maxDuration": max_duration_us,
            "endTs": end_ts_ms,
            "lookback": lookback_ms,
            "limit": limit,
        }
        return self._get("/api/v2/traces", {k: v for k, v in params.items() if v is not None})

    def trace(self, trace_id: str) -> list[dict]:
        return self._get(f"/api/v2/trace/{quote(trace_id, safe='')}")

    def services(self) -> list[str]:
        return self._get("/api/v2/services")

    def store_census(self) -> dict | None:
        """What the trace proxy's store holds (whole, arriving, partial traces); None from
        another Zipkin, which has no such endpoint."""
        try:
            census = self._get("/api/store")
        except TraceProxyError:
            return None
        return census if isinstance(census, dict) and "whole" in census else None
