"""Honeycomb's batch API on the wire: events → gzipped request bodies, answers → per-event results.

Each event is serialised on its own, so one that cannot become JSON (a string with a lone
surrogate, a type JSON has no word for) is scrubbed or, failing that, left out and reported
alone, never taking the rest of its batch with it. A body stays under Honeycomb's batch
size limit by starting a new one when the next event would cross it.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import orjson

from trace_proxy.sinks.honeycomb_events import Event, json_safe

MAX_BODY_BYTES = 4_500_000  # Honeycomb takes batches up to 5 MB (uncompressed); keep a margin
MAX_EVENTS_PER_BODY = 2_000
GZIP_LEVEL = 1  # fastest: the bodies are repetitive JSON, level 1 already shrinks them ~8×


@dataclass
class Body:
    dataset: str
    data: bytes  # gzip
    span_ids: list[str] = field(default_factory=list)  # per event, to name a refused one in the log

    @property
    def events(self) -> int:
        return len(self.span_ids)


def _scrub(value: Any) -> Any:
    """The slow path for an event orjson refused: strings made valid UTF-8, the rest JSON-safe."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {_scrub(str(k)): _scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return json_safe(value)
    return str(value)


def encode_event(event: Event) -> bytes | None:
    """One event as Honeycomb's batch element; None when it cannot be made JSON at all."""
    doc = {"time": event.time, "samplerate": event.sample_rate, "data": event.fields}
    try:
        return orjson.dumps(doc)
    except (TypeError, orjson.JSONEncodeError):
        pass
    try:
        return orjson.dumps(_scrub(doc))
    except (TypeError, orjson.JSONEncodeError, RecursionError):
        return None


def bodies(dataset: str, encoded: Iterable[tuple[str, bytes]]) -> Iterator[Body]:
    """(span id, event JSON) pairs → gzipped JSON array bodies within Honeycomb's limits."""
    parts: list[bytes] = []
    ids: list[str] = []
    size = 2
    for span_id, doc in encoded:
        if parts and (size + len(doc) + 1 > MAX_BODY_BYTES or len(parts) >= MAX_EVENTS_PER_BODY):
            yield Body(dataset, _gzip(parts), ids)
            parts, ids, size = [], [], 2
        parts.append(doc)
        ids.append(span_id)
        size += len(doc) + 1
    if parts:
        yield Body(dataset, _gzip(parts), ids)


def _gzip(parts: list[bytes]) -> bytes:
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(b"[" + b",".join(parts) + b"]") + compressor.flush()


def event_results(reply_body: bytes, count: int) -> list[tuple[int, str]]:
    """Honeycomb's 200 answer: one {"status", "error"} per event, in order.

    Raises ValueError when the answer is not that (then no event can be counted as kept).
    """
    answers = orjson.loads(reply_body)
    if not isinstance(answers, list) or len(answers) != count:
        raise ValueError(f"expected {count} event statuses, got {str(answers)[:200]}")
    results = []
    for answer in answers:
        answer = answer if isinstance(answer, dict) else {}
        status = answer.get("status")
        results.append((status if isinstance(status, int) else 0, str(answer.get("error") or "")))
    return results
