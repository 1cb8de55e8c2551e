"""Run the real trace proxy (gunicorn) as a subprocess on a free loopback port, for tests."""
from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from meshtools.shared.background import serving
from meshtools.local.mesh import trace_proxy_command
from meshtools.shared.net import free_port


@dataclass
class RunningProxy:
    url: str
    process: subprocess.Popen
    output_path: str

    def output(self) -> str:
        with open(self.output_path, encoding="utf-8", errors="replace") as fh:
            return fh.read()


@contextlib.contextmanager
def running_proxy(*args: str, env: dict[str, str] | None = None, timeout: float = 20.0) -> Iterator[RunningProxy]:
    """Start `python -m trace_proxy`, wait for /healthz, always stop it afterwards."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # The child must not inherit a developer's real Honeycomb settings.
    base = {k: v for k, v in os.environ.items() if not k.startswith("HONEYCOMB_")}
    with tempfile.NamedTemporaryFile(prefix="trace-proxy-", suffix=".log", delete=False) as log:
        log_path = Path(log.name)
    try:
        with serving(trace_proxy_command("127.0.0.1", port, *args), f"{url}/healthz", log=log_path,
                     env={**base, **(env or {})}, timeout=timeout, grace=15) as process:
            yield RunningProxy(url, process, str(log_path))
    finally:
        log_path.unlink(missing_ok=True)
