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
                  timeout: float = 60, answer: tuple[str, str] | None = None, env: dict[str, str] | None = None,
                  environ: dict[str, str] | None = None) -> tuple[int, str]:
    """(exit code, output without ANSI codes) of `inv ARGS` on a terminal `columns` wide.

    `until`: a text whose appearance (twice, for a view that redraws) ends it with Ctrl-C (SIGINT).
    `answer`: (prompt, text): the text is typed, then Enter, once the prompt shows (stdin is the
    terminal then, as for a user at it). `env` goes over `environ` (default: this process's).
    """
    parent, child = pty.openpty()
    proc = subprocess.Popen([*INV, *args], cwd=PROJECT_ROOT, stdin=child if answer else subprocess.DEVNULL,
                            stdout=child, stderr=child, start_new_session=True,
                            env=_environment({"COLUMNS": str(columns), "LINES": "50", **(env or {})}, environ,
                                             state_dir))
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
                if answer and answer[0].encode() in out:
                    os.write(parent, answer[1].encode() + b"\n")
                    answer = None
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
