"""A server run as a child process for a while: in its own process group, used once its
health URL answers, and stopped with everything it started (SIGTERM, then SIGKILL)."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path
from typing import Iterator, Mapping

from meshtools.shared.readiness import NotReady, wait_until_ok
from meshtools.shared.topology import PROJECT_ROOT

LOG_LINES_IN_ERRORS = 20


@contextlib.contextmanager
def serving(args: list[str], health_url: str, *, log: Path | None = None, env: Mapping[str, str] | None = None,
            cores: set[int] | None = None, timeout: float = 30.0, grace: float = 10.0,
            accept=None) -> Iterator[subprocess.Popen]:
    """Run `args` (output to `log`, else discarded), pinned to `cores` if given; yield it once healthy
    (its health URL answers 2xx, or whatever reply `accept` takes)."""
    preexec = (lambda: os.sched_setaffinity(0, cores)) if cores else None
    with (log.open("wb") if log else contextlib.nullcontext(subprocess.DEVNULL)) as out:
        proc = subprocess.Popen(args, cwd=PROJECT_ROOT, env=None if env is None else dict(env), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=preexec)
    try:
        try:
            wait_until_ok(health_url, timeout, process=proc, **({"accept": accept} if accept else {}))
        except NotReady as exc:
            raise NotReady(f"{exc}{_tail(log)}", exc.last) from None
        yield proc
    finally:
        stop_group(proc, grace)


def stop_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM to the child's whole group; SIGKILL if it is not gone within `grace` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _tail(log: Path | None) -> str:
    if log is None:
        return ""
    lines = log.read_text(errors="replace").splitlines()[-LOG_LINES_IN_ERRORS:]
    return f"; the end of {log}:\n" + "\n".join(lines) if lines else f"; {log} is empty"
