"""The two statistics every latency view shares: nearest-rank percentiles and log-spaced bins.

`inv load`, `inv traces --breakdown/--heatmap` and the benchmark all use these, so a p99 or
a bin edge means the same thing wherever it is printed.
"""
from __future__ import annotations

import math
from typing import Iterable

NARROW = 1.0001  # a range with high/low below this is one value: there is nothing to space out
NARROW_WIDTH = 1.01  # ...so it gets bins 1% wide rather than a division by log(1)


def rank(p: float, count: int) -> int:
    """The 1-based nearest rank of the p-th percentile (0 < p <= 100) among `count` values."""
    return max(1, math.ceil(p / 100 * count))


def nearest_rank(values: Iterable[float], p: float) -> float | None:
    """The smallest value with at least p% of the values at or below it; None when there are none."""
    ordered = sorted(values)
    return ordered[rank(p, len(ordered)) - 1] if ordered else None


class LogBins:
    """`n` log-spaced bins from `low` to `high` (both above 0): `edges` and the `slot` of a value.

    Latencies span decades, so equal ratios, not equal widths, keep the slow tail readable.
    """

    def __init__(self, low: float, high: float, n: int) -> None:
        self.narrow = high <= low * NARROW
        if self.narrow:
            high = low * NARROW_WIDTH
        self.low, self.high, self.n = low, high, n
        self.edges = [low * (high / low) ** (i / n) for i in range(n + 1)]

    def slot(self, value: float) -> int:
        """The bin `value` falls in; values outside the range go to the first or last bin."""
        position = self.n * math.log(max(value, self.low) / self.low) / math.log(self.high / self.low)
        return min(self.n - 1, int(position))
