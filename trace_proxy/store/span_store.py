"""The local trace store: a bounded, thread-safe map of trace id to spans.

Bounded by span count; when full, whole traces leave, the one least recently added to
first, so a trace still filling stays. Every kept trace is complete: the ids of evicted
traces are remembered (a bounded number of them) and late spans of those traces are
dropped and counted instead of coming back as a fragment.

Lists hand out traces that are done arriving (wholeness.py: whole ones, and partial ones
whose missing spans will never come), never one still arriving; a trace asked for by id
comes back as it is, and `state()` says which it is.
Spans are kept in Zipkin's stored form (normalize.py): lower-case names, string tags.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict

import orjson
from typing import Any, Callable, Iterable

from trace_proxy.ingest.zipkin_json import Span
from trace_proxy.settings import DEFAULT_ROOT_WAIT_SECONDS, DEFAULT_SETTLE_SECONDS
from trace_proxy.store import wholeness
from trace_proxy.store.dependencies import dependency_links
from trace_proxy.store.normalize import stored_form
from trace_proxy.store.span_file import SpanFile, by_trace
from trace_proxy.store.query import TraceQuery, service_name, trace_timestamp

def span_bytes(span: dict[str, Any]) -> int:
    """What a stored span weighs: its JSON (as the query API answers it)."""
    return len(orjson.dumps(span))


DONE = frozenset({wholeness.WHOLE, wholeness.PARTIAL})  # what lists show: nothing still arriving


class _Trace:
    __slots__ = ("spans", "last_arrival", "bytes")

    def __init__(self, span: dict[str, Any], now: float, size: int):
        self.spans = [span]
        self.last_arrival = now
        self.bytes = size


class SpanStore:
    name = "store"

    def __init__(self, max_spans: int, settle_seconds: float = DEFAULT_SETTLE_SECONDS,
                 root_wait_seconds: float = DEFAULT_ROOT_WAIT_SECONDS, clock: Callable[[], float] = time.monotonic,
                 *, max_bytes: int = 64 * 1024 * 1024, metrics=None, span_file: SpanFile | None = None):
        self.max_spans = max_spans
        self.span_file = span_file  # writes behind what the store holds, so that it outlives restarts
        self.max_bytes = max_bytes
        self.metrics = metrics  # counts spans too large to keep at all
        self.settle_seconds = settle_seconds
        self.root_wait_seconds = max(root_wait_seconds, settle_seconds)
        self._clock = clock
        # Ordered by last activity: the first entry is the trace least recently added to.
        self._traces: OrderedDict[str, _Trace] = OrderedDict()
        # An id costs a small fraction of a span, so remembering as many ids as spans keeps
        # the bound proportional while covering far more evictions than spans arrive late.
        self._evicted_ids: OrderedDict[str, None] = OrderedDict()
        self._max_evicted_ids = max(max_spans, 1)
        self._count = 0
        self._bytes = 0
        self._evicted = 0
        self._late = 0
        self._lock = threading.Lock()

    # -- Sink interface -------------------------------------------------------------------
    def accept(self, batch) -> None:
        self.add(batch.spans, batch.size)

    def close(self) -> None:
        if self.span_file is not None:
            self.span_file.close()

    def load(self) -> None:
        """Take back what the span file holds (a previous run's spans), as traces done arriving."""
        if self.span_file is None:
            return
        arrived = self._clock() - self.root_wait_seconds
        with self._lock:
            for tid, spans, size in self.span_file.load():
                share = -(-size // max(len(spans), 1))
                trace = self._traces.get(tid)
                if trace is None:
                    trace = self._traces[tid] = _Trace(spans[0], arrived, 0)
                    spans = spans[1:]
                    self._count += 1
                trace.spans.extend(spans)
                self._count += len(spans)
                trace.bytes += size
                self._bytes += size
            evicted = self._evict()
        if evicted:
            self.span_file.evicted(evicted)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"spans": self._count, "traces": len(self._traces), "bytes": self._bytes,
                    "evicted_spans": self._evicted, "late_spans_dropped": self._late}

    # -- writing --------------------------------------------------------------------------
    def add(self, spans: list[Span], size: int = 0) -> None:
        """`size`: the bytes of the body the spans came in, shared among them (cheaper than
        weighing each on the request path; the sum, what bounds memory, is the same); 0:
        weigh each span's JSON."""
        now = self._clock()
        share = -(-size // len(spans)) if size and spans else 0
        too_large = 0
        kept: list[tuple[str, dict[str, Any]]] = []
        with self._lock:
            for span in spans:
                tid = span.trace_id
                if tid in self._evicted_ids:
                    self._late += 1
                    continue
                stored = span.v2 if span.stored else stored_form(span.v2)
                weight = share or span_bytes(stored)
                if weight > self.max_bytes:
                    too_large += 1
                    continue
                trace = self._traces.get(tid)
                if trace is None:
                    self._traces[tid] = _Trace(stored, now, weight)
                else:
                    trace.spans.append(stored)
                    trace.last_arrival = now
                    trace.bytes += weight
                    self._traces.move_to_end(tid)
                self._count += 1
                self._bytes += weight
                kept.append((tid, stored))
            evicted = self._evict()
        if self.span_file is not None:
            self.span_file.added(*by_trace(kept))
            if evicted:
                self.span_file.evicted(evicted)
        if too_large and self.metrics is not None:
            self.metrics.incr("dropped", too_large, sink=self.name, reason="too_large")

    def _evict(self) -> list[str]:
        """Whole traces out, least recently active first, until within both bounds (holding the lock)."""
        evicted = []
        while (self._count > self.max_spans or self._bytes > self.max_bytes) and self._traces:
            tid, dropped_trace = self._traces.popitem(last=False)
            dropped = dropped_trace.spans
            self._count -= len(dropped)
            self._bytes -= dropped_trace.bytes
            self._evicted += len(dropped)
            self._evicted_ids[tid] = None
            if len(self._evicted_ids) > self._max_evicted_ids:
                self._evicted_ids.popitem(last=False)
            evicted.append(tid)
        return evicted

    # -- reading --------------------------------------------------------------------------
    def trace(self, trace_id: str) -> list[dict[str, Any]] | None:
        """The trace as stored, whole or not (Zipkin's GET /trace/{id})."""
        with self._lock:
            entry = self._traces.get(trace_id)
            return list(entry.spans) if entry is not None else None

    def state(self, trace_id: str) -> str | None:
        """wholeness.WHOLE, ARRIVING or PARTIAL; None for an unknown trace."""
        now = self._clock()
        with self._lock:
            entry = self._traces.get(trace_id)
            if entry is None:
                return None
            spans, quiet = list(entry.spans), now - entry.last_arrival
        return self._state(spans, quiet)

    def _state(self, spans: list[dict[str, Any]], quiet: float) -> str:
        return wholeness.state(spans, quiet, self.settle_seconds, self.root_wait_seconds)

    def _snapshot(self) -> list[tuple[list[dict[str, Any]], float]]:
        """(spans, seconds since the last one arrived) per trace."""
        now = self._clock()
        with self._lock:
            return [(list(e.spans), now - e.last_arrival) for e in self._traces.values()]

    def _all_spans(self) -> Iterable[dict[str, Any]]:
        return (s for spans, _ in self._snapshot() for s in spans)

    def census(self) -> dict[str, int]:
        """How many traces are whole, arriving and partial, and how many spans they hold."""
        counts = {wholeness.WHOLE: 0, wholeness.ARRIVING: 0, wholeness.PARTIAL: 0}
        spans = 0
        for trace, quiet in self._snapshot():
            counts[self._state(trace, quiet)] += 1
            spans += len(trace)
        return {"traces": sum(counts.values()), **counts, "spans": spans}

    def services(self) -> list[str]:
        return sorted({name for s in self._all_spans() if (name := service_name(s))})

    def remote_services(self, service: str) -> list[str]:
        service = service.lower()
        return sorted({name for s in self._all_spans()
                       if service_name(s) == service and (name := service_name(s, "remoteEndpoint"))})

    def span_names(self, service: str) -> list[str]:
        service = service.lower()
        return sorted({s["name"] for s in self._all_spans() if service_name(s) == service and s.get("name")})

    def tag_values(self, key: str) -> list[str]:
        """Every value the tag `key` has in the store (Zipkin's autocompleteValues)."""
        return sorted({v for s in self._all_spans() if (v := (s.get("tags") or {}).get(key)) is not None})

    def search(self, query: TraceQuery, states: frozenset[str] = DONE) -> list[tuple[list[dict[str, Any]], str]]:
        """(spans, state) of the matching traces in `states`, newest first, at most `query.limit`."""
        matches = []
        for spans, quiet in self._snapshot():
            trace_state = self._state(spans, quiet)
            if trace_state in states and (ts := query.matches(spans)):
                matches.append((ts, spans, trace_state))
        matches.sort(key=lambda item: item[0], reverse=True)
        return [(spans, trace_state) for _, spans, trace_state in matches[: query.limit]]

    def traces(self, query: TraceQuery) -> list[list[dict[str, Any]]]:
        """Matching traces done arriving, newest first, at most `query.limit` (Zipkin's GET /traces)."""
        return [spans for spans, _ in self.search(query)]

    def traces_by_id(self, trace_ids: Iterable[str]) -> list[list[dict[str, Any]]]:
        """The stored traces among `trace_ids`, whole or not (Zipkin's GET /traceMany)."""
        return [spans for tid in trace_ids if (spans := self.trace(tid))]

    def dependencies(self, end_ts_ms: int, lookback_ms: int) -> list[dict[str, Any]]:
        """Links between services from the whole traces that started in [endTs - lookback, endTs]."""
        low, high = (end_ts_ms - lookback_ms) * 1000, end_ts_ms * 1000
        window = [spans for spans, quiet in self._snapshot()
                  if self._state(spans, quiet) == wholeness.WHOLE
                  and low <= trace_timestamp(spans) <= high]
        return dependency_links(window)
