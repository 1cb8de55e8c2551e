"""Span → Honeycomb event, in honeycomb-opentracing-proxy's shape plus today's trace fields.

Upstream fields: traceId, name, id, parentId, serviceName, hostIPv4, port, debug, durationMs
(each left out when empty, as its Go `omitempty` did), then every tag as a field (v1 binary
annotation values typed, v2 `kind`). The `honeycomb.dataset` and `honeycomb.samplerate` tags
steer the event instead of becoming fields. On top come the field names Honeycomb's trace
view looks for by default, so a new environment draws the waterfall without setup.

All of this is derived here, from the span as received, so that ingest without a Honeycomb
key never pays for it.

Every value is made JSON that Honeycomb accepts (`json_safe`): a number JSON cannot carry
(NaN, ±Infinity: a v1 annotation "Infinity", a v2 tag 1e999) travels as the string Zipkin's
own Java model prints for it ("NaN", "Infinity", "-Infinity"), and so does an integer
beyond 64 bits. A string rather than dropping the field: Zipkin tag values are strings by
definition (v2) or arrived as strings (v1), so nothing the client said is lost, and a
string is a value Honeycomb takes in any column, where one bare `Infinity` would make
Honeycomb refuse the whole batch, other requests' spans included.
"""
from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from typing import Any, Iterable

from trace_proxy.ingest.zipkin_json import ADDRESS_KEYS, Span, guess_type, micros, parse_endpoint

DATASET_TAG = "honeycomb.dataset"
SAMPLE_RATE_TAG = "honeycomb.samplerate"
_MAX_EVENT_MICROS = 253_402_300_800_000_000  # year 10000: RFC 3339 has four digits for the year
_INT64 = range(-(2**63), 2**64)  # what a JSON parser such as Honeycomb's reads as an integer
_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


@dataclass
class Event:
    fields: dict[str, Any]
    time: str  # RFC 3339 UTC, Honeycomb's event time
    dataset: str | None = None  # None: the configured dataset
    sample_rate: int = 1


class BadDatasetTag(ValueError):
    pass


def keep_trace(trace_id: str, sample_rate: int) -> bool:
    """Deterministic per-trace sampling on the id's low 64 bits, so every span of a kept
    trace is kept (the upstream proxy's rule: trace id modulo the rate is zero)."""
    return sample_rate <= 1 or int(trace_id[-16:], 16) % sample_rate == 0


def sample_rate_from_tag(value: Any) -> int:
    """A usable rate from a tag value; anything invalid means 1 (the upstream proxy's rule)."""
    value = guess_type(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 1
    if value != value or value < 1 or value > 2**32:
        return 1
    return int(value)


@functools.lru_cache(maxsize=4096)
def _second(seconds: int) -> str:
    # The spans of one batch share a handful of seconds: format each second once.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def event_time(timestamp_us: int | None) -> str:
    """The span's start as RFC 3339 UTC (microseconds left out when zero); now without one."""
    if not timestamp_us or timestamp_us >= _MAX_EVENT_MICROS:
        timestamp_us = time.time_ns() // 1000
    seconds, fraction = divmod(timestamp_us, 1_000_000)
    return f"{_second(seconds)}.{fraction:06d}Z" if fraction else f"{_second(seconds)}Z"


def json_safe(value: Any) -> Any:
    """`value` as JSON Honeycomb accepts: non-finite floats and integers beyond 64 bits as
    strings, containers walked (v2 tags may hold any JSON); everything else unchanged."""
    kind = type(value)
    if kind is float:
        if value != value:
            return "NaN"
        return _NON_FINITE.get(value, value)
    if kind is int:
        return value if value in _INT64 else str(value)
    if kind is dict:
        return {k: json_safe(v) for k, v in value.items()}
    if kind is list:
        return [json_safe(v) for v in value]
    return value


def _v1_upstream(raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A v1 span's endpoint and typed tags as the upstream proxy read them: the last endpoint
    of an annotation, else of a binary annotation; address annotations are not tags."""
    endpoint: dict[str, Any] = {}
    tags: dict[str, Any] = {}
    for ba in raw.get("binaryAnnotations") or ():
        if ba is None or ba["key"] in ADDRESS_KEYS:
            continue
        if ba.get("endpoint") is not None:
            endpoint = parse_endpoint(ba["endpoint"], "binaryAnnotation.endpoint")
        tags[ba["key"]] = guess_type(ba.get("value"))
    for ann in raw.get("annotations") or ():
        if ann.get("endpoint") is not None:
            endpoint = parse_endpoint(ann["endpoint"], "annotation.endpoint")
    return endpoint, tags


def upstream_fields(span: Span) -> tuple[dict[str, Any], dict[str, Any], int | None]:
    """The upstream proxy's CoreSpanMetadata (empty values left out, as Go's `omitempty`
    did), its tag fields, and the span's own timestamp (v1: never one derived from annotations)."""
    v2 = span.v2
    if span.version == 1:
        endpoint, tags = _v1_upstream(span.raw)
        # Upstream reported only the span's own duration, not one derived from annotations.
        duration, timestamp = micros(span.raw, "duration"), micros(span.raw, "timestamp")
    else:
        # The tags as received (an OTLP span's typed attributes, a v2 JSON client's numbers).
        endpoint, tags = v2.get("localEndpoint", {}), dict(span.raw.get("tags") or v2.get("tags", {}))
        if v2.get("kind"):
            tags["kind"] = v2["kind"]
        duration, timestamp = v2.get("duration"), v2.get("timestamp")
    core: dict[str, Any] = {"traceId": v2["traceId"], "name": v2.get("name") or "", "id": v2["id"]}
    if v2.get("parentId"):
        core["parentId"] = v2["parentId"]
    for key, field in (("serviceName", "serviceName"), ("ipv4", "hostIPv4"), ("port", "port")):
        if endpoint.get(key):
            core[field] = endpoint[key]
    if v2.get("debug"):
        core["debug"] = True
    if duration:
        core["durationMs"] = duration / 1000.0
    return core, tags, timestamp


def to_event(span: Span, drop_fields: Iterable[str] = (), sample_rate: int = 1) -> Event:
    """Raises BadDatasetTag for a non-string dataset tag (the upstream proxy dropped those)."""
    drop = set(drop_fields)
    core, tags, timestamp_us = upstream_fields(span)
    fields = dict(core)
    dataset, tag_rate = None, 1
    for key, value in tags.items():
        if key in drop:
            continue
        if key == DATASET_TAG:
            if not isinstance(value, str) or not value.strip():
                raise BadDatasetTag(f"span {core['id']}: {DATASET_TAG} must be a non-empty string")
            dataset = value.strip()
        elif key == SAMPLE_RATE_TAG:
            tag_rate = sample_rate_from_tag(value)
        else:
            fields[key] = value if type(value) is str else json_safe(value)
    fields["trace.trace_id"] = core["traceId"]
    fields["trace.span_id"] = core["id"]
    if core.get("parentId"):
        fields["trace.parent_id"] = core["parentId"]
    if core.get("serviceName"):
        fields["service.name"] = core["serviceName"]
    fields["duration_ms"] = core.get("durationMs", 0.0)
    # A span the client sampled 1-in-M, then kept by us 1-in-N, stands for M×N spans.
    return Event(fields, event_time(timestamp_us), dataset, tag_rate * max(sample_rate, 1))


def span_event_events(span: Span, parent: Event, drop_fields: Iterable[str] = ()) -> list[Event]:
    """An OTLP span's events and links as Honeycomb events of their own, beside its span's
    event: tied to it by trace.parent_id, named for it by parent_name, in its dataset and at
    its sample rate, as Honeycomb's OTLP ingest sends them (so its trace view draws them)."""
    if not span.span_events:
        return []
    drop = set(drop_fields)
    core = parent.fields
    shared = {"trace.trace_id": core["trace.trace_id"], "trace.parent_id": core["trace.span_id"],
              "parent_name": core["name"], "meta.signal_type": "trace"}
    if core.get("serviceName"):
        shared["service.name"] = shared["serviceName"] = core["serviceName"]
    events = []
    for timestamp_us, fields in span.span_events:
        own = {k: v if type(v) is str else json_safe(v) for k, v in fields.items()
               if k not in drop and k not in (DATASET_TAG, SAMPLE_RATE_TAG)}
        events.append(Event({**own, **shared}, event_time(timestamp_us), parent.dataset, parent.sample_rate))
    return events
