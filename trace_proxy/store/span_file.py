"""The store's spans on disk: a SQLite file (WAL) the store writes behind, read back at start.

The store answers every query from memory (span_store.py); this file only makes what it
holds outlive the process: a restart, `inv dev`'s reload, `inv local.down`/`up`. Writes
leave the request path: `added` and `evicted` queue their work and one writer thread turns
it into a transaction every WRITE_SECONDS, a row per trace per request (the spans as one
JSON array), so a 100-span request of a few traces costs a few inserts. Evicted traces'
rows are deleted, so the file holds what the store holds: it is bounded by the store's
own span and byte bounds. A crash loses at most the last WRITE_SECONDS of spans.
"""
from __future__ import annotations

import logging
import sqlite3
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator

import orjson

log = logging.getLogger("trace_proxy.store")
MEMORY = ":memory:"  # no file: the store lives and dies with the process
WRITE_SECONDS = 0.5
# Spans waiting for the writer beyond which new ones are not written (counted): the disk
# cannot keep up, and the queue must not grow the process.
MAX_WAITING_SPANS = 200_000
_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (seq INTEGER PRIMARY KEY, trace_id TEXT NOT NULL, spans BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_by_trace ON chunks (trace_id);
"""


class SpanFileError(RuntimeError):
    """The file cannot be opened as a span store; the message says which and why."""


class SpanFile:
    def __init__(self, path: str | Path, metrics=None):
        self.path = Path(path)
        self.metrics = metrics
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable across a process crash
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise SpanFileError(f"cannot use {path} as the span store: {exc}") from None
        self._added: list[tuple[str, list[dict[str, Any]]]] = []
        self._waiting = 0
        self._evicted: list[str] = []
        self._lock = threading.Lock()
        # One writer of the connection at a time: flush() is also called from outside the
        # writer thread (close, the benchmark), and two transactions on one connection fail.
        self._writing = threading.Lock()
        self._stop = threading.Event()
        self._writer = threading.Thread(target=self._run, name="span-file-writer", daemon=True)
        self._writer.start()

    def load(self) -> Iterator[tuple[str, list[dict[str, Any]], int]]:
        """(trace id, spans, bytes) per stored row, oldest first."""
        for trace_id, blob in self._db.execute("SELECT trace_id, spans FROM chunks ORDER BY seq"):
            try:
                yield trace_id, orjson.loads(blob), len(blob)
            except orjson.JSONDecodeError:
                log.warning("span store %s: skipping an unreadable row of trace %s", self.path, trace_id)

    # -- called under the store's lock: only queue ------------------------------------------
    def added(self, by_trace: dict[str, list[dict[str, Any]]], count: int) -> None:
        with self._lock:
            if self._waiting + count > MAX_WAITING_SPANS:
                if self.metrics is not None:
                    self.metrics.incr("dropped", count, sink="store_file", reason="queue_full")
                return
            self._added.extend(by_trace.items())
            self._waiting += count

    def evicted(self, trace_ids: list[str]) -> None:
        with self._lock:
            self._evicted.extend(trace_ids)

    # -- the writer thread --------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(WRITE_SECONDS):
            self.flush()

    def flush(self) -> None:
        with self._writing:
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            added, evicted = self._added, self._evicted
            self._added, self._evicted, self._waiting = [], [], 0
        if not added and not evicted:
            return
        rows = [(trace_id, orjson.dumps(spans)) for trace_id, spans in added]
        try:
            with self._db:  # one transaction
                self._db.execute("BEGIN")
                self._db.executemany("INSERT INTO chunks (trace_id, spans) VALUES (?, ?)", rows)
                self._db.executemany("DELETE FROM chunks WHERE trace_id = ?", [(t,) for t in evicted])
        except sqlite3.Error as exc:
            log.warning("span store %s: writing failed: %s", self.path, exc)
            if self.metrics is not None:
                self.metrics.incr("dropped", sum(len(s) for _, s in added), sink="store_file", reason="write_failed")

    def rows(self) -> int:
        return self._db.execute("SELECT count(*) FROM chunks").fetchone()[0]

    def close(self) -> None:
        self._stop.set()
        self._writer.join(timeout=5)
        self.flush()
        self._db.close()


def by_trace(stored: list[tuple[str, dict[str, Any]]]) -> tuple[dict[str, list[dict[str, Any]]], int]:
    """(trace id, span) pairs grouped by trace, and how many there were."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for trace_id, span in stored:
        groups[trace_id].append(span)
    return groups, len(stored)
