"""Bodies on their way to Honeycomb, kept until Honeycomb has answered them: the spool.

Every compressed batch body goes in before it is sent and leaves once Honeycomb has given
its answer (accepted, or refused for good), so an outage of any length loses nothing that
fits, and with a directory (`--spool-dir`) neither does a restart, a SIGTERM past its grace
period or a kill -9: the next start sends what it finds. Bounded in bytes (`--spool-bytes`):
a body that does not fit is refused, and the caller counts its spans as lost (spool_full).

On disk a body is one file, `<sequence>.body`: a JSON header line (dataset, spans as
`events`, and where the body's span events and links are, if it has any), then
the compressed body. It is written to a temporary name and renamed, so a crash mid-write
leaves no half body behind; files are not fsynced (a process crash keeps the page cache; a
power cut may lose the last seconds). Without a directory the same spool lives in memory
and survives outages, not restarts.
"""
from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import orjson

log = logging.getLogger("trace_proxy.spool")
SUFFIX = ".body"
# Bodies written in this run stay in memory as well, up to this many bytes, so sending them
# reads no file; the rest (a long outage's backlog, a previous run's) are read when sent.
CACHE_BYTES = 32 * 1024 * 1024


@dataclass
class Spooled:
    seq: int
    dataset: str
    events: int
    size: int  # bytes it takes in the spool
    data: bytes | None = None  # None: on disk only
    span_ids: list[str | None] | None = None  # per event, to name a refused one (this run's bodies only)
    annotations: list[int] = field(default_factory=list)  # indices of events that are no span (events, links)


class Spool:
    def __init__(self, directory: str | os.PathLike | None, max_bytes: int):
        self.directory = Path(directory) if directory else None
        self.max_bytes = max_bytes
        self._items: OrderedDict[int, Spooled] = OrderedDict()  # oldest first
        self._claimed: set[int] = set()  # being sent right now
        self._bytes = 0
        self._events = 0
        self._cached = 0
        self._lock = threading.Lock()
        self._next = 1
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._load()

    def _load(self) -> None:
        for path in sorted(self.directory.glob("*" + SUFFIX)):
            try:
                seq = int(path.stem)
                with path.open("rb") as fh:
                    header = orjson.loads(fh.readline())
                item = Spooled(seq, str(header["dataset"]), int(header["events"]), path.stat().st_size,
                               annotations=[int(i) for i in header.get("annotations", ())])
            except (ValueError, KeyError, TypeError, OSError) as exc:
                log.warning("spool: ignoring unreadable %s: %s", path, exc)
                continue
            self._items[seq] = item
            self._bytes += item.size
            self._events += item.events
            self._next = max(self._next, seq + 1)
        for stale in self.directory.glob("*.tmp"):  # a write cut short by a crash
            stale.unlink(missing_ok=True)
        if self._items:
            log.info("spool: %d spans in %d bodies from a previous run, to be sent", self._events, len(self._items))

    def put(self, dataset: str, events: int, data: bytes, span_ids: list[str | None] | None = None,
            annotations: list[int] | None = None) -> Spooled | None:
        """Keep a body of `events` spans, plus the span events and links at the indices
        `annotations`; None when it does not fit (the caller counts its spans as lost)."""
        fields = {"dataset": dataset, "events": events, **({"annotations": annotations} if annotations else {})}
        header = orjson.dumps(fields) + b"\n"
        size = len(header) + len(data)
        with self._lock:
            if self._bytes + size > self.max_bytes:
                return None
            seq = self._next
            self._next += 1
            self._bytes += size
            self._events += events
            cache = self.directory is None or self._cached + size <= CACHE_BYTES
            if cache:
                self._cached += size
            item = Spooled(seq, dataset, events, size, data if cache else None, span_ids, annotations or [])
            self._items[seq] = item
        if self.directory is not None:
            try:
                self._write(seq, header + data)
            except OSError as exc:
                log.warning("spool: cannot write to %s (%s); keeping the body in memory", self.directory, exc)
                with self._lock:
                    if item.data is None:
                        item.data = data
                        self._cached += size
        return item

    def _write(self, seq: int, content: bytes) -> None:
        final = self.directory / f"{seq:016d}{SUFFIX}"
        temporary = final.with_suffix(".tmp")
        with temporary.open("wb") as fh:
            fh.write(content)
        os.replace(temporary, final)

    def claim(self) -> Spooled | None:
        """The oldest body nobody is sending, now claimed by the caller (send, then remove or release)."""
        with self._lock:
            for seq, item in self._items.items():
                if seq not in self._claimed:
                    self._claimed.add(seq)
                    return item
        return None

    def data(self, item: Spooled) -> bytes | None:
        """The body's compressed bytes; None when its file has gone (it is then removed)."""
        if item.data is not None:
            return item.data
        try:
            with self._path(item.seq).open("rb") as fh:
                fh.readline()
                return fh.read()
        except OSError as exc:
            log.warning("spool: body %d unreadable (%s); dropping it", item.seq, exc)
            return None

    def release(self, item: Spooled) -> None:
        """Not sent (Honeycomb failing): back in the spool for a later try."""
        with self._lock:
            self._claimed.discard(item.seq)

    def remove(self, item: Spooled) -> None:
        """Answered: the body leaves the spool."""
        with self._lock:
            if self._items.pop(item.seq, None) is None:
                return
            self._claimed.discard(item.seq)
            self._bytes -= item.size
            self._events -= item.events
            if item.data is not None and self.directory is not None:
                self._cached -= item.size
        if self.directory is not None:
            self._path(item.seq).unlink(missing_ok=True)

    def _path(self, seq: int) -> Path:
        return self.directory / f"{seq:016d}{SUFFIX}"

    def waiting(self) -> bool:
        """A body nobody is sending is in the spool."""
        with self._lock:
            return len(self._items) > len(self._claimed)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"bytes": self._bytes, "spans": self._events, "bodies": len(self._items)}

    def full(self, margin: int = 0) -> bool:
        with self._lock:
            return self._bytes + margin > self.max_bytes
