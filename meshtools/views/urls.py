"""The --url check and the URL shortening every task's messages share."""
from __future__ import annotations

from urllib.parse import unquote, urlsplit

from invoke import Exit

MESSAGE_URL_CHARS = 100  # a URL in a one-line message never takes more than this


def check_base_url(url: str, flag: str = "--url") -> str:
    """`url` when it reads http(s)://host[:port][/prefix]; ValueError with one sentence otherwise."""
    problem = f"{flag} must be http://host:port (or https://), got {shorten(url)!r}."
    if not url or any(c.isspace() or not c.isprintable() for c in url):
        raise ValueError(problem)
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 -- raises on a port that is not a number in range
    except ValueError:
        raise ValueError(problem) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(problem)
    return url


def shorten(text: str, limit: int = MESSAGE_URL_CHARS) -> str:
    """`text`, its middle elided when it is longer than `limit` (a 70 KB URL stays one line)."""
    if len(text) <= limit:
        return text
    keep = limit - 1
    return f"{text[: keep - keep // 4]}…{text[len(text) - keep // 4:]}"


def url_flag(url: str, flag: str = "--url") -> str:
    """`check_base_url` for a task's flag: bad input ends the task with its one sentence."""
    try:
        return check_base_url(url, flag)
    except ValueError as exc:
        raise Exit(str(exc)) from None


def readable(text: str) -> str:
    """A URL or path as a person reads it: percent-escapes decoded (`/echo/café`, not
    `/echo/caf%C3%A9`), anything unprintable (a decoded CR or LF) shown escaped so it stays one line."""
    decoded = unquote(text, errors="replace")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in decoded)
