"""Dependency links kept per whole trace and summed per second, so /dependencies adds up
buckets instead of walking every trace.

Each whole trace's links (dependencies.py) are computed once, when it has settled, and
filed under the second its trace timestamp falls in; a bucket keeps its traces' links and
their running sum. A window adds the sums of the buckets wholly inside it and, in the two
buckets its edges cut, the links of the traces inside. A trace that changes (a late span)
or leaves the store takes its links out again.
"""
from __future__ import annotations

from typing import Any

from sortedcontainers import SortedList

BUCKET_US = 1_000_000

Links = tuple[tuple[str, str, int, int], ...]  # (parent, child, calls, errors)


class _Bucket:
    __slots__ = ("traces", "totals")

    def __init__(self):
        self.traces: dict[str, tuple[int, Links]] = {}
        self.totals: dict[tuple[str, str], list[int]] = {}


class LinkIndex:
    def __init__(self):
        self._buckets: dict[int, _Bucket] = {}
        self._keys = SortedList()
        self._where: dict[str, int] = {}  # trace id → its bucket

    def __contains__(self, trace_id: str) -> bool:
        return trace_id in self._where

    def add(self, trace_id: str, timestamp: int, links: Links) -> None:
        key = timestamp // BUCKET_US
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket()
            self._keys.add(key)
        bucket.traces[trace_id] = (timestamp, links)
        self._where[trace_id] = key
        for parent, child, calls, errors in links:
            total = bucket.totals.get((parent, child))
            if total is None:
                bucket.totals[(parent, child)] = [calls, errors]
            else:
                total[0] += calls
                total[1] += errors

    def remove(self, trace_id: str) -> None:
        key = self._where.pop(trace_id, None)
        if key is None:
            return
        bucket = self._buckets[key]
        _, links = bucket.traces.pop(trace_id)
        for parent, child, calls, errors in links:
            total = bucket.totals[(parent, child)]
            total[0] -= calls
            total[1] -= errors
            if total[0] <= 0:
                del bucket.totals[(parent, child)]
        if not bucket.traces:
            del self._buckets[key]
            self._keys.remove(key)

    def window(self, low: int, high: int) -> list[dict[str, Any]]:
        """Links summed over the traces whose timestamp is in [low, high] µs, by parent then child."""
        sums: dict[tuple[str, str], list[int]] = {}
        for key in self._keys.irange(low // BUCKET_US, high // BUCKET_US):
            bucket = self._buckets[key]
            if low <= key * BUCKET_US and (key + 1) * BUCKET_US - 1 <= high:
                for pair, (calls, errors) in bucket.totals.items():
                    _sum(sums, pair, calls, errors)
                continue
            for timestamp, links in bucket.traces.values():
                if low <= timestamp <= high:
                    for parent, child, calls, errors in links:
                        _sum(sums, (parent, child), calls, errors)
        return [{"parent": p, "child": c, "callCount": calls, "errorCount": errors}
                for (p, c), (calls, errors) in sorted(sums.items())]


def _sum(sums: dict, pair: tuple[str, str], calls: int, errors: int) -> None:
    total = sums.get(pair)
    if total is None:
        sums[pair] = [calls, errors]
    else:
        total[0] += calls
        total[1] += errors
