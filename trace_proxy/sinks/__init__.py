"""Where accepted spans go. Each sink is a module of its own with this small interface.

`accept(batch)` runs on the server's event loop, so it must never block on the network: sinks
that talk to other services hand work to a bounded queue and count what they drop.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Protocol

from trace_proxy.ingest.zipkin_json import Span


@dataclass
class Batch:
    spans: list[Span]
    version: int  # Zipkin API version the client posted to (1 or 2)
    raw: bytes  # the body exactly as received
    content_type: str
    content_encoding: str
    # The body is no Zipkin encoding (OTLP): mirror the parsed spans as Zipkin v2 JSON instead.
    mirror_as_v2: bool = False
    size: int = 0  # the body's bytes once decompressed (0: unknown): what the store weighs


class Sink(Protocol):
    name: str

    def accept(self, batch: Batch) -> None: ...

    def close(self) -> None: ...


class ThrottledWarning:
    """Log each recurring failure at most once per `interval` seconds, counting repeats.

    An unreachable backend fails for every span; one line per span would flood the log.
    Messages are throttled per format string, so one kind of failure never hides another.
    """

    def __init__(self, logger, interval: float = 10.0):
        self._logger = logger
        self._interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def warn(self, message: str, *args) -> None:
        with self._lock:
            now = time.monotonic()
            last = self._last.get(message)
            if last is not None and now - last < self._interval:
                self._suppressed[message] = self._suppressed.get(message, 0) + 1
                return
            suppressed = self._suppressed.pop(message, 0)
            self._last[message] = now
        if suppressed:
            message += " (%d similar messages suppressed)"
            args = (*args, suppressed)
        self._logger.warning(message, *args)
