"""Run the real trace proxy (gunicorn) as a subprocess on a free loopback port, for tests."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Iterator

import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningProxy:
    url: str
    process: subprocess.Popen
    output_path: str

    def output(self) -> str:
        with open(self.output_path, encoding="utf-8", errors="replace") as fh:
            return fh.read()


def _wait_healthy(url: str, process: subprocess.Popen, log_path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"trace proxy exited with {process.returncode}:\n{open(log_path).read()}")
        try:
            if requests.get(f"{url}/healthz", timeout=0.5).ok:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"trace proxy not healthy within {timeout}s:\n{open(log_path).read()}")


@contextlib.contextmanager
def running_proxy(*args: str, env: dict[str, str] | None = None, timeout: float = 20.0) -> Iterator[RunningProxy]:
    """Start `python -m trace_proxy`, wait for /healthz, always stop it afterwards."""
    port = free_port()
    # The child must not inherit a developer's real Honeycomb settings.
    base = {k: v for k, v in os.environ.items() if not k.startswith("HONEYCOMB_")}
    with tempfile.NamedTemporaryFile("w+b", prefix="trace-proxy-", suffix=".log", delete=False) as log:
        log_path = log.name
        process = subprocess.Popen(
            [sys.executable, "-m", "trace_proxy", "--host", "127.0.0.1", "--port", str(port), *args],
            stdout=log, stderr=subprocess.STDOUT, env={**base, **(env or {})},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log_path, timeout)
        yield RunningProxy(url, process, log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        with contextlib.suppress(OSError):
            os.unlink(log_path)
