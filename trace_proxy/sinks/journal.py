"""The write-ahead journal: spans accepted for Honeycomb and not yet in the spool.

The spooler gathers accepted spans for up to `send_frequency` before it turns them into a
spool body, so without this a kill -9 (or an out-of-memory kill) lost what had been
answered 202 in the last quarter second. With a spool directory, each accepted batch's
spans are appended to the journal before the request is answered: one `write()` of one
line, with no fsync (a dead process keeps the page cache; a power cut may lose the last
seconds, as the spool's bodies may). The next start reads what is left and sends it.

The journal is a folder of segments, `<sequence>.jsonl`, one line per batch. The spooler
starts a new segment each time it gathers; a segment is deleted once it is no longer
written to and every batch in it is spooled (or counted as lost). A batch that was spooled
just before a kill can be sent twice (Honeycomb shows a duplicate); none is lost.

A line is the batch's spans as `[version, v2, raw or null, stored, span events]`, `raw`
only where it differs from `v2` (what to_event reads: a v1 span's binary annotations, an
OTLP span's typed attributes), made JSON-safe the way the event will be.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import orjson

from trace_proxy.ingest.zipkin_json import Span
from trace_proxy.sinks.honeycomb_events import json_safe

log = logging.getLogger("trace_proxy.journal")
FOLDER = "journal"  # under the spool directory
SUFFIX = ".jsonl"


def _record(span: Span) -> list:
    raw = None if span.raw is span.v2 else json_safe(span.raw)
    events = [[when, json_safe(fields)] for when, fields in span.span_events] if span.span_events else None
    return [span.version, span.v2, raw, span.stored, events]


def encode(spans: list[Span]) -> bytes:
    records = [_record(span) for span in spans]
    try:
        return orjson.dumps(records) + b"\n"
    except TypeError:  # an integer beyond 64 bits in a v2 tag: as the event will write it
        return orjson.dumps(json_safe(records)) + b"\n"


def decode(line: bytes) -> list[Span]:
    spans = []
    for version, v2, raw, stored, events in orjson.loads(line):
        span_events = [(when, fields) for when, fields in events] if events else None
        spans.append(Span(v2=v2, raw=v2 if raw is None else raw, version=version, stored=stored,
                          span_events=span_events))
    return spans


class Journal:
    def __init__(self, spool_dir: str | os.PathLike):
        self.directory = Path(spool_dir) / FOLDER
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._pending: dict[int, int] = {}  # segment → batches in it not yet spooled
        self._found = sorted(int(p.stem) for p in self.directory.glob("*" + SUFFIX) if p.stem.isdigit())
        self._current = (self._found[-1] if self._found else 0) + 1
        self._fd: int | None = None

    def recover(self) -> list[tuple[int, list[Span]]]:
        """The batches a previous run journaled and did not spool, each with its segment;
        those segments are deleted once these batches are spooled (`done`)."""
        recovered = []
        for segment in self._found:
            path = self._path(segment)
            try:
                content = path.read_bytes()
            except OSError as exc:
                log.warning("journal: cannot read %s (%s); skipping it", path, exc)
                continue
            lines = content.split(b"\n")
            if lines[-1]:  # a line cut short by the crash: it was never answered 202
                log.warning("journal: %s ends in a partial line; ignoring it", path)
            batches = 0
            for line in lines[:-1]:
                try:
                    recovered.append((segment, decode(line)))
                except (ValueError, TypeError) as exc:
                    log.warning("journal: an unreadable line in %s (%s); skipping it", path, exc)
                else:
                    batches += 1
            with self._lock:
                self._pending[segment] = batches
            self._forget_if_done(segment)
        self._found = []
        return recovered

    def append(self, spans: list[Span]) -> int | None:
        """Journal one accepted batch; its segment, for `done` once it is spooled. None: it
        could not be written (the spans go on in memory only, as without a spool directory)."""
        try:
            line = encode(spans)
        except (TypeError, ValueError) as exc:
            log.warning("journal: a batch cannot be journaled (%s); it is kept in memory only", exc)
            return None
        with self._lock:
            try:
                if self._fd is None:
                    self._fd = os.open(self._path(self._current), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                os.write(self._fd, line)
            except OSError as exc:
                log.warning("journal: cannot write to %s (%s); the batch is kept in memory only", self.directory, exc)
                return None
            self._pending[self._current] = self._pending.get(self._current, 0) + 1
            return self._current

    def rotate(self) -> None:
        """Start a new segment: the old one is deleted as soon as everything in it is spooled."""
        with self._lock:
            if self._fd is None:
                return
            os.close(self._fd)
            self._fd, old = None, self._current
            self._current += 1
        self._forget_if_done(old)

    def done(self, segment: int | None) -> None:
        """A batch of `segment` is in the spool now (or was counted as lost)."""
        if segment is None:
            return
        with self._lock:
            self._pending[segment] -= 1
        self._forget_if_done(segment)

    def _forget_if_done(self, segment: int) -> None:
        with self._lock:
            if self._pending.get(segment, 0) > 0 or (segment == self._current and self._fd is not None):
                return
            self._pending.pop(segment, None)
        self._path(segment).unlink(missing_ok=True)

    def close(self) -> None:
        self.rotate()

    def segments(self) -> int:
        """Segment files present: 0 when everything journaled is in the spool."""
        return sum(1 for _ in self.directory.glob("*" + SUFFIX))

    def _path(self, segment: int) -> Path:
        return self.directory / f"{segment:016d}{SUFFIX}"
