"""The local trace store: a bounded, thread-safe map of trace id to spans.

Bounded by span count; when full, whole traces leave, the one least recently added to
first, so a trace still filling stays. Every kept trace is complete: the ids of evicted
traces are remembered (a bounded number of them) and late spans of those traces are
dropped and counted instead of coming back as a fragment.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Iterable

from trace_proxy.store.query import TraceQuery, service_name
from trace_proxy.ingest.zipkin_json import Span


class SpanStore:
    name = "store"

    def __init__(self, max_spans: int):
        self.max_spans = max_spans
        # Ordered by last activity: the first entry is the trace least recently added to.
        self._traces: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        # An id costs a small fraction of a span, so remembering as many ids as spans keeps
        # the bound proportional while covering far more evictions than spans arrive late.
        self._evicted_ids: OrderedDict[str, None] = OrderedDict()
        self._max_evicted_ids = max(max_spans, 1)
        self._count = 0
        self._evicted = 0
        self._late = 0
        self._lock = threading.Lock()

    # -- Sink interface -------------------------------------------------------------------
    def accept(self, batch) -> None:
        self.add(batch.spans)

    def close(self) -> None:
        pass

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"spans": self._count, "traces": len(self._traces), "evicted_spans": self._evicted,
                    "late_spans_dropped": self._late}

    # -- writing --------------------------------------------------------------------------
    def add(self, spans: Iterable[Span]) -> None:
        with self._lock:
            for span in spans:
                tid = span.trace_id
                if tid in self._evicted_ids:
                    self._late += 1
                    continue
                trace = self._traces.get(tid)
                if trace is None:
                    self._traces[tid] = [span.v2]
                else:
                    trace.append(span.v2)
                    self._traces.move_to_end(tid)
                self._count += 1
            while self._count > self.max_spans and self._traces:
                tid, dropped = self._traces.popitem(last=False)
                self._count -= len(dropped)
                self._evicted += len(dropped)
                self._evicted_ids[tid] = None
                if len(self._evicted_ids) > self._max_evicted_ids:
                    self._evicted_ids.popitem(last=False)

    # -- reading --------------------------------------------------------------------------
    def trace(self, trace_id: str) -> list[dict[str, Any]] | None:
        with self._lock:
            spans = self._traces.get(trace_id)
            return list(spans) if spans is not None else None

    def _snapshot(self) -> list[list[dict[str, Any]]]:
        with self._lock:
            return [list(spans) for spans in self._traces.values()]

    def services(self) -> list[str]:
        return sorted({name for t in self._snapshot() for s in t if (name := service_name(s))})

    def remote_services(self, service: str) -> list[str]:
        service = service.lower()
        names = {name for t in self._snapshot() for s in t
                 if service_name(s).lower() == service and (name := service_name(s, "remoteEndpoint"))}
        return sorted(names)

    def span_names(self, service: str) -> list[str]:
        service = service.lower()
        names = {s["name"] for t in self._snapshot() for s in t if service_name(s).lower() == service and s.get("name")}
        return sorted(names)

    def traces(self, query: TraceQuery) -> list[list[dict[str, Any]]]:
        """Matching traces, newest first, at most `query.limit`."""
        matches = [(ts, spans) for spans in self._snapshot() if (ts := query.matches(spans))]
        matches.sort(key=lambda item: item[0], reverse=True)
        return [spans for _, spans in matches[: query.limit]]
