"""Read and decode one POSTed span body, enforcing the size limit before and after gzip."""
from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass
from typing import IO, Any

import orjson

_CHUNK = 64 * 1024
# The JSON types span POSTs must carry. No Content-Type, text/plain and the form types are
# refused: those are what any web page may make a browser send cross-site without asking
# (a `no-cors` fetch of a Blob carries none), and every Zipkin client names its type.
_JSON_TYPES = {"application/json", "text/json"}
# A \uD800-\uDFFF escape: the only way JSON text can carry a lone surrogate, which no
# UTF-8 reply, page or Honeycomb event can hold.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class IngestError(Exception):
    """A body the proxy refuses: HTTP status, a sentence for the client, a short code for /metrics."""

    def __init__(self, status: int, reason: str, code: str = ""):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.code = code


@dataclass
class Body:
    raw: bytes  # exactly as received (possibly gzip), for mirroring downstream
    content_type: str
    content_encoding: str
    size: int = 0  # bytes once decompressed: what its spans weigh in the store


def read_limited(stream: IO[bytes], limit: int) -> bytes:
    """Read at most `limit` bytes; more means 413 (works for chunked bodies too)."""
    parts, size = [], 0
    while True:
        chunk = stream.read(min(_CHUNK, limit + 1 - size))
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            raise IngestError(413, f"body larger than {limit} bytes")
    return b"".join(parts)


def gunzip_limited(data: bytes, limit: int) -> bytes:
    """Decompress without ever holding more than `limit` + 1 bytes (gzip bombs get 413)."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
        if len(out) > limit or inflater.unconsumed_tail:
            raise IngestError(413, f"body larger than {limit} bytes once decompressed")
        if not inflater.eof:
            raise IngestError(400, "gzip body is truncated", "bad_gzip")
    except zlib.error as exc:
        raise IngestError(400, f"body is not valid gzip: {exc}", "bad_gzip") from None
    return out


def _refuse_constant(name: str):
    # Python's json accepts NaN/Infinity, which no other JSON parser (Honeycomb's included) does.
    raise ValueError(f"{name} is not JSON")


def media_type(header: str | None) -> str:
    """The bare media type of a Content-Type header, lowercase ("" when there is none)."""
    return (header or "").split(";", 1)[0].strip().lower()


def read_body(stream: IO[bytes], *, content_encoding: str | None, limit: int) -> tuple[bytes, bytes, str]:
    """(raw as received, decoded bytes, encoding): the size limit before and after gzip."""
    encoding = (content_encoding or "").strip().lower()
    if encoding not in ("", "identity", "gzip"):
        raise IngestError(415, f"unsupported Content-Encoding {encoding!r}: send gzip or nothing")
    raw = read_limited(stream, limit)
    return raw, (gunzip_limited(raw, limit) if encoding == "gzip" else raw), encoding


def parse_json(text: bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        # orjson is strict where the standard library is lenient on purpose: a number too
        # large for a double (1e999, kept as infinity, sent on as a string) and lone
        # surrogates. The standard parser decides, and words the error when there is one.
        return strict_json(text)


def strict_json(text: bytes) -> Any:
    """The standard library's parser with JSON's own rules (no NaN/Infinity); a lone
    surrogate escape becomes U+FFFD, as a UTF-8 reader would read it."""
    try:
        payload = json.loads(text, parse_constant=_refuse_constant)
        return replace_surrogates(payload) if _SURROGATE_ESCAPE.search(text) else payload
    except (UnicodeDecodeError, ValueError) as exc:
        raise IngestError(400, f"body is not valid JSON: {exc}", "malformed") from None
    except RecursionError:
        raise IngestError(400, "body is not valid JSON: nested too deeply", "malformed") from None


def replace_surrogates(value: Any) -> Any:
    """`value` with every lone surrogate in its strings (keys too) made U+FFFD."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {replace_surrogates(k): replace_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [replace_surrogates(v) for v in value]
    return value

