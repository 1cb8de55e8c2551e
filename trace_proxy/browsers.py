"""Refuse span POSTs a web page made a browser send to another site (issue 21, item 5).

A page on any site can make the user's browser POST to the proxy on loopback: the spans
would land in the store and go on to Honeycomb under the user's key. Browsers say where a
request comes from (`Sec-Fetch-Site`, `Origin`); every other client (Envoy, SDKs,
collectors, curl) sends neither, or its own origin, and is never refused.
"""
from __future__ import annotations

from urllib.parse import urlsplit

# Sec-Fetch-Site values of requests a user or the proxy's own pages made.
_OWN = frozenset({"same-origin", "none"})


def cross_site_reason(environ: dict, allowed_origins: frozenset[str] = frozenset()) -> str:
    """Why this request is a browser's cross-site POST, or "" when it is not (or comes from
    an origin `--cors-origin` names)."""
    if allowed_origins and environ.get("HTTP_ORIGIN", "").strip() in allowed_origins:
        return ""
    fetch_site = environ.get("HTTP_SEC_FETCH_SITE", "").strip().lower()
    if fetch_site and fetch_site not in _OWN:
        return f"refused: a browser's {fetch_site} request (Sec-Fetch-Site); only this proxy's own pages may post"
    origin = environ.get("HTTP_ORIGIN", "").strip()
    if origin and origin not in allowed_origins and not _same_origin(origin, environ.get("HTTP_HOST", "")):
        return f"refused: Origin {origin[:100]!r} is not this proxy; only its own pages may post"
    return ""


def cors_headers(origin: str, allowed_origins: frozenset[str]) -> list[tuple[str, str]]:
    """The CORS permissions for a request from `origin`: none unless `--cors-origin` names it."""
    if not origin or origin not in allowed_origins:
        return []
    return [("access-control-allow-origin", origin), ("vary", "Origin"),
            ("access-control-allow-methods", "GET, POST"),
            ("access-control-allow-headers", "Content-Type, Content-Encoding")]


def _same_origin(origin: str, host: str) -> bool:
    try:
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and bool(host) and parts.netloc.lower() == host.strip().lower()
    except ValueError:
        return False
