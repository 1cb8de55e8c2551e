"""Wait for a condition in a test, with a deadline that fails the test saying what never happened."""
from __future__ import annotations

import time

from tests.support.speed import scaled


def wait_for(predicate, timeout: float, what: str):
    """`predicate()`'s first truthy value, polled every 50 ms; AssertionError after `timeout`
    seconds of a quiet machine (scaled for this one: tests/support/speed.py)."""
    timeout = round(scaled(timeout), 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")
