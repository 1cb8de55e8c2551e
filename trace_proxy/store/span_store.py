"""The local trace store: a bounded, thread-safe map of trace id to spans.

Bounded by span count; when full, whole traces leave, the one least recently added to
first, so a trace still filling stays. Every kept trace is complete: the ids of evicted
traces are remembered (a bounded number of them) and late spans of those traces are
dropped and counted instead of coming back as a fragment.

Lists hand out traces that are done arriving (wholeness.py: whole ones, and partial ones
whose missing spans will never come), never one still arriving; a trace asked for by id
comes back as it is, and `state()` says which it is.
Spans are kept in Zipkin's stored form (normalize.py): lower-case names, string tags.

Queries read indexes kept up to date as spans arrive and traces leave (trace_index.py:
time order and names; link_index.py: dependency links per second), so their cost follows
the answer's size, not the store's. What a trace's state needs of its spans is worked out
once per change of the trace.
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
from trace_proxy.store.link_index import LinkIndex
from trace_proxy.store.normalize import stored_form
from trace_proxy.store.span_file import SpanFile, by_trace
from trace_proxy.store.query import TraceQuery
from trace_proxy.store.term_index import TermIndex
from trace_proxy.store.trace_index import TraceIndex

def span_bytes(span: dict[str, Any]) -> int:
    """What a stored span weighs: its JSON (as the query API answers it)."""
    return len(orjson.dumps(span))


DONE = frozenset({wholeness.WHOLE, wholeness.PARTIAL})  # what lists show: nothing still arriving
# Traces a query indexes per hold of the store's lock (some milliseconds of work) when it
# has a backlog to index; between holds, requests get their turn.
SLICE_TRACES = 500


class _Trace:
    __slots__ = ("spans", "last_arrival", "bytes", "root_ts", "earliest", "longest", "shape", "keys")

    def __init__(self, now: float):
        self.spans: list[dict[str, Any]] = []
        self.last_arrival = now
        self.bytes = 0
        self.root_ts = 0  # the first root span's timestamp (µs), 0 until one with a timestamp came
        self.earliest = 0  # the earliest span timestamp
        self.longest = 0  # the longest span duration: a search for longer ones skips the trace
        self.shape: tuple[bool, bool, bool] | None = None  # wholeness.shape, None until asked after a change
        self.keys: set[tuple[str, str, str]] = set()  # what the name index holds of it (trace_index.py)

    @property
    def timestamp(self) -> int:
        """Zipkin's trace timestamp (query.trace_timestamp), kept as spans arrive."""
        return self.root_ts or self.earliest


class SpanStore:
    name = "store"

    def __init__(self, max_spans: int, settle_seconds: float = DEFAULT_SETTLE_SECONDS,
                 root_wait_seconds: float = DEFAULT_ROOT_WAIT_SECONDS, clock: Callable[[], float] = time.monotonic,
                 *, max_bytes: int = 64 * 1024 * 1024, metrics=None, span_file: SpanFile | None = None,
                 answered_settle_seconds: float | None = None):
        self.max_spans = max_spans
        self.span_file = span_file  # writes behind what the store holds, so that it outlives restarts
        self.max_bytes = max_bytes
        self.metrics = metrics  # counts spans too large to keep at all
        self.settle_seconds = settle_seconds
        # The quiet time that does for a trace with every call answered (wholeness.py); never
        # longer than the settle time, which does for any trace.
        self.answered_settle_seconds = (settle_seconds if answered_settle_seconds is None
                                        else min(answered_settle_seconds, settle_seconds))
        self.root_wait_seconds = max(root_wait_seconds, settle_seconds)
        self._clock = clock
        # Ordered by last activity: the first entry is the trace least recently added to.
        self._traces: OrderedDict[str, _Trace] = OrderedDict()
        # An id costs a small fraction of a span, so remembering as many ids as spans keeps
        # the bound proportional while covering far more evictions than spans arrive late.
        self._evicted_ids: OrderedDict[str, None] = OrderedDict()
        self._max_evicted_ids = max(max_spans, 1)
        self._index = TraceIndex()
        self._links = LinkIndex()
        self._terms = TermIndex()
        # Traces changed since the link index last looked, least recently changed first: the
        # ones quiet for the settle time lead, and /dependencies files those that are whole.
        self._unsettled: OrderedDict[str, None] = OrderedDict()
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
                trace = self._traces.get(tid)
                if trace is None:
                    trace = self._traces[tid] = _Trace(arrived)
                for span in spans:
                    self._put(tid, trace, span)
                self._touched(tid, trace, arrived)
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
        touched: dict[str, _Trace] = {}  # what is done once per trace, not per span, after the loop
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
                trace = touched.get(tid) or self._traces.get(tid)
                if trace is None:
                    trace = self._traces[tid] = _Trace(now)
                touched[tid] = trace
                self._put(tid, trace, stored)
                trace.bytes += weight
                self._bytes += weight
                kept.append((tid, stored))
            for tid, trace in touched.items():
                self._touched(tid, trace, now)
            evicted = self._evict()
        if self.span_file is not None:
            self.span_file.added(*by_trace(kept))
            if evicted:
                self.span_file.evicted(evicted)
        if too_large and self.metrics is not None:
            self.metrics.incr("dropped", too_large, sink=self.name, reason="too_large")

    def _put(self, tid: str, trace: _Trace, stored: dict[str, Any]) -> None:
        """One span into its trace and the indexes (holding the lock; on the request path,
        hence inline)."""
        trace.spans.append(stored)
        self._count += 1
        ts = stored.get("timestamp")
        if ts:
            before = trace.root_ts or trace.earliest
            if not trace.root_ts and not stored.get("parentId"):
                trace.root_ts = ts
            if not trace.earliest or ts < trace.earliest:
                trace.earliest = ts
            if (trace.root_ts or trace.earliest) != before:
                self._index.retime(tid, before, trace.root_ts or trace.earliest)
        duration = stored.get("duration")
        if duration and duration > trace.longest:
            trace.longest = duration
        local, remote = stored.get("localEndpoint"), stored.get("remoteEndpoint")
        key = ((local and local.get("serviceName")) or "", stored.get("name") or "",
               (remote and remote.get("serviceName")) or "")
        if key not in trace.keys:  # a trace's many spans of one kind: one set lookup each
            trace.keys.add(key)
            self._index.add_key(tid, key)

    def _touched(self, tid: str, trace: _Trace, now: float) -> None:
        """A trace got spans (holding the lock): the most recently active now, and no
        longer settled."""
        trace.last_arrival = now
        trace.shape = None
        self._traces.move_to_end(tid)
        if tid in self._links:
            self._links.remove(tid)  # whole no more, for now
        self._unsettled[tid] = None
        self._unsettled.move_to_end(tid)
        self._terms.changed(tid)

    def _evict(self) -> list[str]:
        """Whole traces out, least recently active first, until within both bounds (holding the lock)."""
        evicted = []
        while (self._count > self.max_spans or self._bytes > self.max_bytes) and self._traces:
            tid, dropped_trace = self._traces.popitem(last=False)
            dropped = dropped_trace.spans
            self._count -= len(dropped)
            self._bytes -= dropped_trace.bytes
            self._index.remove(tid, dropped_trace.keys, dropped_trace.timestamp)
            self._links.remove(tid)
            self._unsettled.pop(tid, None)
            self._terms.evicted(tid, dropped)
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
            return self._state(entry, now) if entry is not None else None

    def _state(self, trace: _Trace, now: float) -> str:
        if trace.shape is None:
            trace.shape = wholeness.shape(trace.spans)
        return wholeness.state_of(trace.shape, now - trace.last_arrival, self.settle_seconds, self.root_wait_seconds,
                                  self.answered_settle_seconds)

    def census(self) -> dict[str, int]:
        """How many traces are whole, arriving and partial, and how many spans they hold."""
        counts = {wholeness.WHOLE: 0, wholeness.ARRIVING: 0, wholeness.PARTIAL: 0}
        now = self._clock()
        with self._lock:
            for trace in self._traces.values():
                counts[self._state(trace, now)] += 1
            spans = self._count
        return {"traces": sum(counts.values()), **counts, "spans": spans}

    def services(self) -> list[str]:
        with self._lock:
            return self._index.services()

    def remote_services(self, service: str) -> list[str]:
        with self._lock:
            return self._index.remote_services(service.lower())

    def span_names(self, service: str) -> list[str]:
        with self._lock:
            return self._index.span_names(service.lower())

    def tag_values(self, key: str) -> list[str]:
        """Every value the tag `key` has in the store (Zipkin's autocompleteValues)."""
        self._in_slices(lambda: self._terms.catch_up(self._spans_of, SLICE_TRACES))
        with self._lock:
            return self._terms.tag_values(key, self._spans_of)

    def _spans_of(self, trace_id: str) -> list[dict[str, Any]] | None:
        trace = self._traces.get(trace_id)
        return trace.spans if trace is not None else None

    def search(self, query: TraceQuery, states: frozenset[str] = DONE) -> list[tuple[list[dict[str, Any]], str]]:
        """(spans, state) of the matching traces in `states`, newest first (ties: higher
        trace id first), at most `query.limit`."""
        now = self._clock()
        found = []
        if query.annotations:
            self._in_slices(lambda: self._terms.catch_up(self._spans_of, SLICE_TRACES))
        with self._lock:
            traces = self._traces
            terms = None
            if query.annotations:
                terms = self._terms.candidates(query.annotations, self._spans_of)
            for tid in self._index.newest_first(query, lambda t: (e.timestamp if (e := traces.get(t)) else 0), terms):
                trace = traces[tid]
                if query.min_duration is not None and trace.longest < query.min_duration:
                    continue
                trace_state = self._state(trace, now)
                if trace_state in states and query.matches(trace.spans):
                    found.append((list(trace.spans), trace_state))
                    if len(found) >= query.limit:
                        break
        return found

    def traces(self, query: TraceQuery) -> list[list[dict[str, Any]]]:
        """Matching traces done arriving, newest first, at most `query.limit` (Zipkin's GET /traces)."""
        return [spans for spans, _ in self.search(query)]

    def traces_by_id(self, trace_ids: Iterable[str]) -> list[list[dict[str, Any]]]:
        """The stored traces among `trace_ids`, whole or not (Zipkin's GET /traceMany)."""
        return [spans for tid in trace_ids if (spans := self.trace(tid))]

    def dependencies(self, end_ts_ms: int, lookback_ms: int) -> list[dict[str, Any]]:
        """Links between services from the whole traces that started in [endTs - lookback,
        endTs], by parent then child."""
        now = self._clock()
        self._in_slices(lambda: self._settle(now, SLICE_TRACES))
        with self._lock:
            self._settle(now)
            return self._links.window((end_ts_ms - lookback_ms) * 1000, end_ts_ms * 1000)

    def _in_slices(self, step: Callable[[], bool]) -> None:
        """Run `step` (holding the lock) until it says the work is done, letting the request
        path in between: the first query after a start or a fill indexes the whole store,
        seconds at a million spans, and ingest must not wait that long. The caller finishes
        what is left, if anything, in its own hold of the lock."""
        for _ in range(len(self._traces) // SLICE_TRACES + 2):  # bounded: spans keep coming
            with self._lock:
                if step():
                    return
            time.sleep(0)  # hand the GIL to a thread waiting for the lock

    def _settle(self, now: float, budget: int | None = None) -> bool:
        """File the links of the traces that have settled since last asked, at most `budget`
        of them (holding the lock); True once none is left.

        A trace quiet for the settle time is whole now or cannot become whole without a
        new span, which puts it back in line: either way it leaves the line. One quiet for
        the shorter answered-settle time leaves it if it is whole already (so /dependencies
        counts every trace the lists show), and otherwise waits in line for the settle time."""
        unsettled, traces = self._unsettled, self._traces
        settled: list[str] = []
        done = True
        for tid in unsettled:
            trace = traces[tid]
            quiet = now - trace.last_arrival
            if quiet < self.answered_settle_seconds:
                break  # this one and every later one are still arriving
            whole = self._state(trace, now) == wholeness.WHOLE  # its shape is kept: cheap to ask again
            if not whole and quiet < self.settle_seconds:
                continue  # whole or partial once the settle time is up: stays in line till then
            if budget is not None:
                if budget <= 0:
                    done = False
                    break
                budget -= 1
            settled.append(tid)
            if whole:
                links = tuple((link["parent"], link["child"], link["callCount"], link["errorCount"])
                              for link in dependency_links([trace.spans]))
                self._links.add(tid, trace.timestamp, links)
        for tid in settled:
            del unsettled[tid]
        return done
