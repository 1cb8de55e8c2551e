"""Span → Honeycomb event, in honeycomb-opentracing-proxy's shape plus today's trace fields.

Upstream fields: traceId, name, id, parentId, serviceName, hostIPv4, port, debug, durationMs
(each left out when empty, as its Go `omitempty` did), then every tag as a field (v1 binary
annotation values typed, v2 `kind`). The `honeycomb.dataset` and `honeycomb.samplerate` tags
steer the event instead of becoming fields. On top come the field names Honeycomb's trace
view looks for by default, so a new environment draws the waterfall without setup.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Iterable

from trace_proxy.spans import Span, guess_type

DATASET_TAG = "honeycomb.dataset"
SAMPLE_RATE_TAG = "honeycomb.samplerate"
_EPOCH = dt.datetime(1970, 1, 1)


@dataclass
class Event:
    fields: dict[str, Any]
    timestamp: dt.datetime  # naive UTC, as libhoney expects
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


def event_time(timestamp_us: int | None) -> dt.datetime:
    if timestamp_us:
        try:
            return _EPOCH + dt.timedelta(microseconds=timestamp_us)
        except OverflowError:
            pass
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def to_event(span: Span, drop_fields: Iterable[str] = (), sample_rate: int = 1) -> Event:
    """Raises BadDatasetTag for a non-string dataset tag (the upstream proxy dropped those)."""
    drop = set(drop_fields)
    fields = dict(span.core)
    dataset, tag_rate = None, 1
    for key, value in span.tags.items():
        if key in drop:
            continue
        if key == DATASET_TAG:
            if not isinstance(value, str) or not value.strip():
                raise BadDatasetTag(f"span {span.core['id']}: {DATASET_TAG} must be a non-empty string")
            dataset = value.strip()
        elif key == SAMPLE_RATE_TAG:
            tag_rate = sample_rate_from_tag(value)
        else:
            fields[key] = value
    fields["trace.trace_id"] = span.core["traceId"]
    fields["trace.span_id"] = span.core["id"]
    if span.core.get("parentId"):
        fields["trace.parent_id"] = span.core["parentId"]
    if span.core.get("serviceName"):
        fields["service.name"] = span.core["serviceName"]
    fields["duration_ms"] = span.core.get("durationMs", 0.0)
    # A span the client sampled 1-in-M, then kept by us 1-in-N, stands for M×N spans.
    return Event(fields, event_time(span.timestamp_us), dataset, tag_rate * max(sample_rate, 1))
