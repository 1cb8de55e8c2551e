"""Test deadlines that scale with how fast this machine runs right now.

A deadline that holds on a quiet machine fails on a busy laptop (another pytest, a compile, a
CPU hog beside it). Once per run a small CPU-bound job is timed against what it takes on a quiet
2-core machine; every deadline in the tests is multiplied by the ratio (at least 1, at most
MAX_SLOWDOWN). TEST_SLOWDOWN=3 sets it by hand. A deadline is a limit, never an expectation:
scaling it loosens no assertion on what the user sees.
"""
from __future__ import annotations

import functools
import os
import statistics
import time

QUIET_SECONDS = 0.015  # the job below on this project's 2-core machine at its quietest (0.0165 s seen at load 8)
MAX_SLOWDOWN = 4.0  # a deadline stretched further only makes a real failure slower to report
ROUNDS = 7


def _job() -> float:
    started = time.perf_counter()
    total = 0
    for i in range(200_000):
        total += i * i % 7
    return time.perf_counter() - started


@functools.cache
def slowdown() -> float:
    """How many times slower than the quiet machine this one runs now (1 … MAX_SLOWDOWN)."""
    if given := os.environ.get("TEST_SLOWDOWN"):
        return max(1.0, float(given))
    # Rounds spread over ~0.2 s: a busy machine shows in their median, a single hiccup does not.
    seconds = statistics.median(_job() for _ in range(ROUNDS))
    return min(MAX_SLOWDOWN, max(1.0, seconds / QUIET_SECONDS))


def scaled(seconds: float) -> float:
    """A deadline of `seconds` on a quiet machine, stretched for this one."""
    return seconds * slowdown()
