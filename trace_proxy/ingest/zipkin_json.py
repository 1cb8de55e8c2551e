"""Turn Zipkin v1 and v2 JSON spans into one internal shape.

Each accepted span becomes a `Span`: its Zipkin v2 form (what the local store keeps and the
query API returns) plus the span as received, from which `trace_proxy.sinks.honeycomb_events` derives the
upstream honeycomb-opentracing-proxy's fields only when a Honeycomb key is set.
"""
from __future__ import annotations

import functools
import ipaddress
import math
import re
from dataclasses import dataclass
from typing import Any, Callable

_HEX = re.compile(r"[0-9a-fA-F]{1,32}")
_CANONICAL_ID = re.compile(r"[0-9a-f]{16}")  # a 64-bit id as it is stored
_MAX_MICROS = 2**63 - 1
_MIN_MICROS = -(2**63)
KINDS = ("CLIENT", "SERVER", "PRODUCER", "CONSUMER")
ZERO_ID = "0" * 16  # Zipkin refuses all-zero trace and span ids; an all-zero parentId is none
# v1 binary annotations naming the *remote* address; never the span's own endpoint.
ADDRESS_KEYS = {"ca", "sa", "ma"}


class SpanError(ValueError):
    """A span the proxy refuses; the message is the reason given to the client."""


@dataclass
class Span:
    v2: dict[str, Any]
    raw: dict[str, Any]  # as received, already validated; events.py reads upstream's fields from it
    version: int  # the Zipkin API version it came in as (1 or 2)
    stored: bool = False  # v2 is already in the store's form (lower-case names, string tags)
    # An OTLP span's events and links as Honeycomb's own OTLP ingest makes them events of their
    # own: (time in µs, fields) each; None for every other span.
    span_events: list[tuple[int, dict[str, Any]]] | None = None

    @property
    def trace_id(self) -> str:
        return self.v2["traceId"]


def normalize_trace_id(value: Any, *, where: str = "traceId") -> str:
    """Lowercase hex, 16 or 32 characters; a 128-bit id with zero high bits becomes 64-bit."""
    if type(value) is str and len(value) == 16 and _CANONICAL_ID.fullmatch(value):
        return value  # what Envoy and most tracers send: nothing to normalise
    tid = _hex_id(value, where)
    tid = tid.zfill(32 if len(tid) > 16 else 16)
    if len(tid) == 32 and tid.startswith("0" * 16):
        tid = tid[16:]
    return tid


def _hex_id(value: Any, where: str) -> str:
    if type(value) is not str or not _HEX.fullmatch(value):
        raise SpanError(f"{where} must be a string of 1 to 32 hex characters")
    return value.lower()


def _span_id(value: Any, where: str) -> str:
    if type(value) is str and len(value) == 16 and _CANONICAL_ID.fullmatch(value):
        return value
    sid = _hex_id(value, where)
    if len(sid) > 16:
        raise SpanError(f"{where} must be at most 16 hex characters")
    return sid.zfill(16)


def _optional_id(span: dict, key: str) -> str | None:
    value = span.get(key)
    if value in (None, ""):
        return None
    return _span_id(value, key)


def micros(span: dict, key: str) -> int | None:
    value = span.get(key)
    if value is None:
        return None
    if type(value) is int and 0 <= value <= _MAX_MICROS:
        return value or None  # the common case, checked in one step
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpanError(f"{key} must be a number of microseconds")
    if value != value or not _MIN_MICROS <= value <= _MAX_MICROS:  # NaN or not an int64
        raise SpanError(f"{key} must be between -2^63 and 2^63-1 microseconds")
    # Zipkin treats 0 as absent, and so a negative one (its Span.Builder makes it 0).
    return int(value) if value >= 1 else None


def _string(span: dict, key: str) -> str | None:
    value = span.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise SpanError(f"{key} must be a string")
    return value


def _object(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SpanError(f"{where} must be an object")
    return value


def _list(value: Any, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise SpanError(f"{where} must be a list")
    return value


def parse_endpoint(value: Any, where: str) -> dict[str, Any]:
    raw = _object(value, where)
    out: dict[str, Any] = {}
    for key in ("serviceName", "ipv4", "ipv6"):
        item = raw.get(key)
        if item is not None and item != "":
            if type(item) is not str:
                raise SpanError(f"{where}.{key} must be a string")
            if key == "serviceName":
                out[key] = item
            elif (address := canonical_ip(item)) is not None:  # Zipkin drops what is no address
                out[address[0]] = address[1]
    port = raw.get("port")
    if port not in (None, 0):
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise SpanError(f"{where}.port must be an integer between 1 and 65535")
        out["port"] = port
    return out



@functools.lru_cache(maxsize=4096)
def canonical_ip(text: str) -> tuple[str, str] | None:
    """("ipv4" or "ipv6", the address as Zipkin writes it) for an address in either field, None
    for no address: IPv6 compressed and lower-case, an IPv4-mapped one as the IPv4 it is."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return ("ipv4" if address.version == 4 else "ipv6"), str(address)


def _require_object(raw: Any) -> dict:
    if not isinstance(raw, dict):
        raise SpanError("each span must be a JSON object")
    for key in ("traceId", "id"):
        if key not in raw:
            raise SpanError(f"span has no {key}")
    return raw


def _debug(raw: dict) -> bool:
    value = raw.get("debug")
    if value is not None and not isinstance(value, bool):
        raise SpanError("debug must be true or false")
    return bool(value)


def _identity(raw: Any) -> tuple[dict, str, str, str | None, str | None]:
    """What v1 and v2 spans share, checked alike: the object, its traceId, id, parentId and name."""
    raw = _require_object(raw)
    trace_id, span_id, parent_id = normalize_trace_id(raw["traceId"]), _span_id(raw["id"], "id"), \
        _optional_id(raw, "parentId")
    if trace_id == ZERO_ID:
        raise SpanError("traceId must not be all zeros")
    if span_id == ZERO_ID:
        raise SpanError("id must not be all zeros")
    return raw, trace_id, span_id, None if parent_id == ZERO_ID else parent_id, _string(raw, "name")


def _v2_form(trace_id: str, span_id: str, parent_id: str | None, name: str | None, kind: str | None,
             timestamp: int | None, duration: int | None, local: dict | None, remote: dict | None,
             annotations: list, tags: dict, debug: bool, shared: bool = False) -> dict[str, Any]:
    """A v2 span from checked fields, each left out when empty, as Zipkin leaves them out.
    Plain branches rather than filtering a dict of the optional fields: this runs for every
    span of the general path, and the filtered dict cost 1 µs more per span (3.6 µs in all)."""
    v2: dict[str, Any] = {"traceId": trace_id, "id": span_id}
    if parent_id:
        v2["parentId"] = parent_id
    if name:
        v2["name"] = name
    if kind:
        v2["kind"] = kind
    if timestamp:
        v2["timestamp"] = timestamp
    if duration:
        v2["duration"] = duration
    if local:
        v2["localEndpoint"] = local
    if remote:
        v2["remoteEndpoint"] = remote
    if annotations:
        v2["annotations"] = annotations
    if tags:
        v2["tags"] = tags  # v2: shared with `raw`, neither is ever changed after parsing
    if debug:
        v2["debug"] = True
    if shared:
        v2["shared"] = True
    return v2


def finish_v2(trace_id: str, span_id: str, parent_id: str | None, name: str | None, kind: str | None,
              timestamp: int | None, duration: int | None, local: dict | None, remote: dict | None,
              annotations: list, tags: dict, debug: bool, shared: bool = False) -> dict[str, Any]:
    """`_v2_form` after Zipkin's own span rules: a span is not its own parent, only a server
    side is shared, annotations in time order without repeats."""
    if parent_id == span_id:
        parent_id = None
    if len(annotations) > 1:
        annotations = [{"timestamp": t, "value": v} for t, v in
                       sorted({(a["timestamp"], a["value"]) for a in annotations})]
    return _v2_form(trace_id, span_id, parent_id, name, kind, timestamp, duration, local, remote, annotations,
                    tags, debug, shared and kind != "CLIENT")


def from_v2(raw: Any) -> Span:
    # The general path: a v2 JSON body in canonical form (what Envoy sends) never comes
    # here (zipkin_canonical.py); protobuf spans and everything else do.
    raw, trace_id, span_id, parent_id, name = _identity(raw)
    kind = _string(raw, "kind")
    if kind is not None and kind not in KINDS:
        raise SpanError(f"kind must be one of {', '.join(KINDS)}, not {kind[:40]!r}")
    timestamp, duration = micros(raw, "timestamp"), micros(raw, "duration")
    local = parse_endpoint(raw.get("localEndpoint"), "localEndpoint")
    remote = parse_endpoint(raw.get("remoteEndpoint"), "remoteEndpoint")
    # A decoded JSON object (and the binary encodings' maps) only ever has string keys.
    tags = _tags(raw.get("tags"))
    annotations = []
    for ann in _list(raw.get("annotations"), "annotations"):
        ann = _object(ann, "annotation")
        annotations.append({"timestamp": micros(ann, "timestamp") or 0, "value": _string(ann, "value") or ""})
    v2 = finish_v2(trace_id, span_id, parent_id, name, kind, timestamp, duration, local, remote, annotations,
                   tags, _debug(raw), raw.get("shared") is True)
    return Span(v2=v2, raw=raw, version=2)


def _tags(value: Any) -> dict:
    """v2 tags: a value is a string (Zipkin's model); a number, boolean or null is taken and
    kept as its JSON text by the store; a list or an object is refused, as Zipkin refuses it
    (and a value nested 1,000 deep never reaches a sink)."""
    tags = _object(value, "tags")
    for key, item in tags.items():
        if type(item) is not str and isinstance(item, (dict, list)):
            raise SpanError(f"tags.{key[:64]} must be a string, not {_json_kind(item)}")
    return tags


def _json_kind(value: Any) -> str:
    return "an object" if isinstance(value, dict) else "a list"


def guess_type(value: Any) -> Any:
    """v1 binary annotation values travel as strings; type them as the upstream proxy did."""
    if not isinstance(value, str):
        return value
    if value in ("true", "false"):
        return value == "true"
    if re.fullmatch(r"[+-]?\d+", value):
        number = int(value)
        if -(2**63) <= number < 2**63:
            return number
    try:
        number = float(value)
    except ValueError:
        return value
    # A value that is no finite number ("NaN", "Infinity", "1e999") stays the string it came
    # as: Honeycomb would refuse a non-finite number, and the string is what the client sent.
    return number if math.isfinite(number) else value


def each_span(items: list, convert: Callable[[Any], list[Span]]) -> list[Span]:
    """`convert` on every item of a body's list; raises SpanError naming the first bad one."""
    spans = []
    for index, raw in enumerate(items):
        try:
            spans.extend(convert(raw))
        except SpanError as exc:
            raise SpanError(f"span {index}: {exc}") from None
    return spans


def parse(payload: Any, version: int = 2) -> list[Span]:
    """Validate a decoded v2 request body (v1: zipkin_v1.parse); raises SpanError naming the first bad span."""
    if version != 2:
        raise ValueError("zipkin_json.parse reads v2 spans; v1 is zipkin_v1.parse")
    if not isinstance(payload, list):
        raise SpanError("the body must be a JSON list of spans")
    return each_span(payload, lambda raw: [from_v2(raw)])
