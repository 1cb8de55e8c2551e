"""SIGTERM handled like Ctrl-C while a task starts processes, so it stops them before exiting.

Python ends on SIGTERM without unwinding: no `finally`, no cleanup, orphans left behind.
Inside `sigterm_as_interrupt()` SIGTERM raises KeyboardInterrupt instead, so the code that
already stops everything on Ctrl-C covers `kill` and `timeout` as well.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator


def _interrupt(signum, frame):
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers (and only it receives signals)
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
