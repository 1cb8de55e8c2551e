"""Wait until an HTTP URL answers, with a deadline and the last thing seen when it does not."""
from __future__ import annotations

import subprocess
import time
from typing import Callable

import requests


class NotReady(RuntimeError):
    """The URL did not answer in time, or the process meant to serve it exited."""

    def __init__(self, message: str, last: str):
        super().__init__(message)
        self.last = last  # the last reply's status, or the last error's name


def wait_until_ok(url: str, timeout: float, *, accept: Callable[[requests.Response], bool] = lambda r: r.ok,
                  process: subprocess.Popen | None = None, request_timeout: float = 1.0,
                  interval: float = 0.05) -> requests.Response:
    """Poll `url` until `accept(reply)`; raise NotReady at the deadline or when `process` exits."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise NotReady(f"the process serving {url} exited with {process.returncode}", last)
        try:
            reply = requests.get(url, timeout=request_timeout)
            if accept(reply):
                return reply
            last = f"HTTP {reply.status_code}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        time.sleep(interval)
    raise NotReady(f"{url} did not answer within {timeout:g} s (last: {last})", last)


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll `condition` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True
