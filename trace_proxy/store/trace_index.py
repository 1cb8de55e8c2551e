"""The store's indexes, so that a query reads the traces it answers with, not all of them.

- time: every trace with a timestamp, ordered by it (Zipkin's trace timestamp: the root
  span's, else the earliest), so a search walks newest first inside its window and stops
  at its limit;
- names: per service the traces it appears in, and per service the span names and
  remote services with their traces (the API's /services, /spans, /remoteServices, and a
  search's candidates).

Maintained by the store under its lock as spans arrive and traces leave; every query
still checks each candidate against the full matching rule (query.py), so an index only
has to hold a superset of the answer.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterator

from sortedcontainers import SortedList

from trace_proxy.store.query import TraceQuery, service_name

# A candidate set at most this fraction of all traces is sorted by time and read whole;
# a larger one is cheaper to meet while walking the time order.
SORT_FRACTION = 8


class TraceIndex:
    def __init__(self):
        self._by_time = SortedList()  # (timestamp µs, trace id)
        self._by_service: dict[str, set[str]] = {}
        self._names: dict[str, dict[str, set[str]]] = defaultdict(dict)  # service → span name → traces
        self._remotes: dict[str, dict[str, set[str]]] = defaultdict(dict)  # service → remote → traces

    # -- maintenance ----------------------------------------------------------------------
    def add_key(self, trace_id: str, key: tuple[str, str, str]) -> None:
        """The trace has a span of this (service, span name, remote service)."""
        service, name, remote = key
        _add(self._by_service, service, trace_id)
        if name:
            _add(self._names[service], name, trace_id)
        if remote:
            _add(self._remotes[service], remote, trace_id)

    def retime(self, trace_id: str, old: int, new: int) -> None:
        """The trace's timestamp went from `old` to `new` (0: none)."""
        if old:
            self._by_time.remove((old, trace_id))
        if new:
            self._by_time.add((new, trace_id))

    def remove(self, trace_id: str, keys: set[tuple[str, str, str]], timestamp: int) -> None:
        self.retime(trace_id, timestamp, 0)
        for service, name, remote in keys:
            _discard(self._by_service, service, trace_id)
            if name:
                _discard(self._names[service], name, trace_id)
            if remote:
                _discard(self._remotes[service], remote, trace_id)
            for table in (self._names, self._remotes):
                if service in table and not table[service]:
                    del table[service]

    # -- reading --------------------------------------------------------------------------
    def services(self) -> list[str]:
        return sorted(name for name in self._by_service if name)

    def span_names(self, service: str) -> list[str]:
        return sorted(self._names.get(service, ()))

    def remote_services(self, service: str) -> list[str]:
        return sorted(self._remotes.get(service, ()))

    def newest_first(self, query: TraceQuery, timestamp_of, also: set[str] | None = None) -> Iterator[str]:
        """Ids of the traces that may match `query`, started inside its window, newest first.

        `timestamp_of(trace id)`: a trace's timestamp, 0 for one not stored (anymore);
        `also`: another set every match is in (the annotation terms' candidates)."""
        low, high = (query.end_ts - query.lookback) * 1000, query.end_ts * 1000
        sets = self._candidates(query) + ([also] if also is not None else [])
        if not sets:
            yield from (tid for _, tid in self._by_time.irange((max(low, 1),), (high + 1,), (True, False), reverse=True))
            return
        sets.sort(key=len)
        narrow, others = sets[0], sets[1:]
        if len(narrow) * SORT_FRACTION <= len(self._by_time):
            stamped = [(ts, tid) for tid in narrow if (ts := timestamp_of(tid)) and low <= ts <= high]
            stamped.sort(reverse=True)
            yield from (tid for _, tid in stamped if all(tid in s for s in others))
            return
        for _, tid in self._by_time.irange((max(low, 1),), (high + 1,), (True, False), reverse=True):
            if tid in narrow and all(tid in s for s in others):
                yield tid

    def _candidates(self, query: TraceQuery) -> list[set[str]]:
        """The index sets every match is in (none when no index applies)."""
        if query.service_name is None:
            return []
        sets = [self._by_service.get(query.service_name, set())]
        if query.span_name is not None:
            sets.append(self._names.get(query.service_name, {}).get(query.span_name, set()))
        if query.remote_service_name is not None:
            sets.append(self._remotes.get(query.service_name, {}).get(query.remote_service_name, set()))
        return sets


def _add(table: dict[str, set[str]], key: str, trace_id: str) -> None:
    traces = table.get(key)
    if traces is None:
        traces = table[key] = set()
    traces.add(trace_id)


def _discard(table: dict[str, set[str]], key: str, trace_id: str) -> None:
    traces = table.get(key)
    if traces is not None:
        traces.discard(trace_id)
        if not traces:
            del table[key]
