"""Thread-safe counters behind the /metrics endpoint."""
from __future__ import annotations

import threading
from collections import Counter


class Metrics:
    """Counts keyed by (what, sink, reason); `snapshot()` renders them for /metrics."""

    def __init__(self):
        self._counts: Counter[tuple[str, str, str]] = Counter()
        self._lock = threading.Lock()

    def incr(self, what: str, n: int = 1, *, sink: str = "", reason: str = "") -> None:
        if n:
            with self._lock:
                self._counts[(what, sink, reason)] += n

    def snapshot(self) -> dict:
        with self._lock:
            items = list(self._counts.items())
        out: dict = {"received": {"requests": 0, "spans": 0}, "rejected": {"requests": 0, "by_status": {}},
                     "forwarded": {}, "dropped": {}}
        for (what, sink, reason), value in items:
            if what == "received":
                out["received"][reason or "spans"] += value
            elif what == "rejected":
                out["rejected"]["requests"] += value
                out["rejected"]["by_status"][reason] = out["rejected"]["by_status"].get(reason, 0) + value
            elif what == "forwarded":
                out["forwarded"][sink] = out["forwarded"].get(sink, 0) + value
            elif what == "dropped":
                out["dropped"].setdefault(sink, {})
                out["dropped"][sink][reason] = out["dropped"][sink].get(reason, 0) + value
        return out
