"""The local trace store: a bounded, thread-safe map of trace id to spans.

Bounded by span count; when full, whole traces leave in the order they first arrived, so
what stays is always the most recent traffic and every kept trace is complete.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Iterable

from trace_proxy.query import TraceQuery
from trace_proxy.spans import Span


class SpanStore:
    name = "store"

    def __init__(self, max_spans: int = 100_000):
        self.max_spans = max_spans
        self._traces: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self._count = 0
        self._evicted = 0
        self._lock = threading.Lock()

    # -- Sink interface -------------------------------------------------------------------
    def accept(self, batch) -> None:
        self.add(batch.spans)

    def close(self) -> None:
        pass

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"spans": self._count, "traces": len(self._traces), "evicted_spans": self._evicted}

    # -- writing --------------------------------------------------------------------------
    def add(self, spans: Iterable[Span]) -> None:
        with self._lock:
            for span in spans:
                self._traces.setdefault(span.trace_id, []).append(span.v2)
                self._count += 1
            while self._count > self.max_spans and self._traces:
                _, dropped = self._traces.popitem(last=False)
                self._count -= len(dropped)
                self._evicted += len(dropped)

    # -- reading --------------------------------------------------------------------------
    def trace(self, trace_id: str) -> list[dict[str, Any]] | None:
        with self._lock:
            spans = self._traces.get(trace_id)
            return list(spans) if spans is not None else None

    def _snapshot(self) -> list[list[dict[str, Any]]]:
        with self._lock:
            return [list(spans) for spans in self._traces.values()]

    def services(self) -> list[str]:
        names = {s["localEndpoint"]["serviceName"] for t in self._snapshot() for s in t
                 if s.get("localEndpoint", {}).get("serviceName")}
        return sorted(names)

    def remote_services(self, service: str) -> list[str]:
        service = service.lower()
        names = {s["remoteEndpoint"]["serviceName"] for t in self._snapshot() for s in t
                 if _service(s) == service and s.get("remoteEndpoint", {}).get("serviceName")}
        return sorted(names)

    def span_names(self, service: str) -> list[str]:
        service = service.lower()
        names = {s["name"] for t in self._snapshot() for s in t if _service(s) == service and s.get("name")}
        return sorted(names)

    def traces(self, query: TraceQuery) -> list[list[dict[str, Any]]]:
        """Matching traces, newest first, at most `query.limit`."""
        matches = [(ts, spans) for spans in self._snapshot() if (ts := query.matches(spans))]
        matches.sort(key=lambda item: item[0], reverse=True)
        return [spans for _, spans in matches[: query.limit]]


def _service(span: dict[str, Any]) -> str:
    return (span.get("localEndpoint", {}).get("serviceName") or "").lower()
