"""`inv` with its output on a pseudo-terminal, as a user at a terminal sees it (colours, Live views)."""
from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import time
from pathlib import Path

from tests.support.inv_process import INV, _environment
from meshtools.shared.topology import PROJECT_ROOT

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def on_a_terminal(*args: str, state_dir: Path | None, columns: int = 200, until: str | None = None,
                  timeout: float = 60) -> tuple[int, str]:
    """(exit code, output without ANSI codes) of `inv ARGS` on a terminal `columns` wide.

    `until`: a text whose appearance (twice, for a view that redraws) ends it with Ctrl-C (SIGINT).
    """
    parent, child = pty.openpty()
    proc = subprocess.Popen([*INV, *args], cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=child, stderr=child,
                            env=_environment({"COLUMNS": str(columns), "LINES": "50"}, None, state_dir),
                            start_new_session=True)
    os.close(child)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([parent], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(parent, 65536)
                except OSError:  # the terminal closes once the process has exited
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
            if until and ANSI.sub("", out.decode(errors="replace")).count(until) >= 2 and proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                until = None
    finally:
        if proc.poll() is None and time.monotonic() >= deadline:
            proc.kill()
        code = proc.wait(30)
        os.close(parent)
    return code, ANSI.sub("", out.decode(errors="replace")).replace("\r\n", "\n")
