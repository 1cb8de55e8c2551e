"""Zipkin's /api/v2/traces query: parameters, units and matching rules.

Units follow Zipkin: endTs and lookback in epoch milliseconds, durations in microseconds.
A trace matches when its root (or earliest) span started inside [endTs - lookback, endTs]
and, among the spans of `serviceName` (any span if not given), each condition is met by
some span.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping

DEFAULT_LOOKBACK_MS = 86_400_000  # Zipkin's default: one day
DEFAULT_LIMIT = 10


class QueryError(ValueError):
    """A query parameter with a bad value; the message goes back with a 400."""


def service_name(span: dict[str, Any], endpoint: str = "localEndpoint") -> str:
    """The span's service (or, with "remoteEndpoint", its peer's) as sent; "" if none."""
    return (span.get(endpoint) or {}).get("serviceName") or ""


def parse_annotation_query(text: str) -> dict[str, str]:
    """`error and http.method=GET` -> {"error": "", "http.method": "GET"} (Zipkin's syntax)."""
    terms: dict[str, str] = {}
    for term in text.split(" and "):
        term = term.strip()
        if not term:
            continue
        key, _, value = term.partition("=")
        terms[key.strip()] = value.strip()
    return terms


def int_arg(args: Mapping[str, str], name: str, default: int | None, minimum: int = 0) -> int | None:
    raw = args.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise QueryError(f"{name} must be an integer") from None
    if value < minimum:
        raise QueryError(f"{name} must be at least {minimum}")
    return value


@dataclass
class TraceQuery:
    service_name: str | None = None
    remote_service_name: str | None = None
    span_name: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    min_duration: int | None = None
    max_duration: int | None = None
    end_ts: int = 0
    lookback: int = DEFAULT_LOOKBACK_MS
    limit: int = DEFAULT_LIMIT

    @classmethod
    def from_args(cls, args: Mapping[str, str], now_ms: int | None = None) -> "TraceQuery":
        def name(key):
            value = (args.get(key) or "").strip().lower()
            return None if value in ("", "all") else value

        end_ts = int_arg(args, "endTs", None, minimum=1) or (now_ms or int(time.time() * 1000))
        query = cls(
            service_name=name("serviceName"),
            remote_service_name=name("remoteServiceName"),
            span_name=name("spanName"),
            annotations=parse_annotation_query(args.get("annotationQuery") or ""),
            min_duration=int_arg(args, "minDuration", None, minimum=1),
            max_duration=int_arg(args, "maxDuration", None, minimum=1),
            end_ts=end_ts,
            lookback=int_arg(args, "lookback", DEFAULT_LOOKBACK_MS, minimum=0),
            limit=int_arg(args, "limit", DEFAULT_LIMIT, minimum=1),
        )
        if query.max_duration is not None and query.min_duration is None:
            raise QueryError("maxDuration needs minDuration")
        if query.max_duration is not None and query.max_duration < query.min_duration:
            raise QueryError("maxDuration must be at least minDuration")
        return query

    def matches(self, spans: list[dict[str, Any]]) -> int:
        """The trace's timestamp (µs) if it matches, else 0."""
        ts = trace_timestamp(spans)
        if not ts or ts < (self.end_ts - self.lookback) * 1000 or ts > self.end_ts * 1000:
            return 0
        want_service = self.service_name is not None
        want_remote = self.remote_service_name is not None
        want_name = self.span_name is not None
        want_duration = self.min_duration is not None
        remaining = dict(self.annotations)
        for span in spans:
            if self.service_name is not None and service_name(span).lower() != self.service_name:
                continue
            want_service = False
            if want_remote and service_name(span, "remoteEndpoint").lower() == self.remote_service_name:
                want_remote = False
            if want_name and (span.get("name") or "").lower() == self.span_name:
                want_name = False
            if want_duration and self._duration_ok(span.get("duration")):
                want_duration = False
            if remaining:
                _strike_annotations(span, remaining)
        return ts if not (want_service or want_remote or want_name or want_duration or remaining) else 0

    def _duration_ok(self, duration: int | None) -> bool:
        if not duration or duration < self.min_duration:
            return False
        return self.max_duration is None or duration <= self.max_duration


def _strike_annotations(span: dict[str, Any], remaining: dict[str, str]) -> None:
    for ann in span.get("annotations", []):
        if remaining.get(ann.get("value")) == "":
            del remaining[ann["value"]]
    for key, value in span.get("tags", {}).items():
        if key in remaining and remaining[key] in ("", str(value)):
            del remaining[key]


def trace_timestamp(spans: list[dict[str, Any]]) -> int:
    """The root span's timestamp, else the earliest one (Zipkin's rule)."""
    earliest = 0
    for span in spans:
        ts = span.get("timestamp") or 0
        if not ts:
            continue
        if not span.get("parentId"):
            return ts
        earliest = ts if not earliest else min(earliest, ts)
    return earliest
