"""`inv` run as a user runs it: a subprocess of this Python, in the project root, never reading a terminal."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator, Mapping

from meshtools.shared.topology import PROJECT_ROOT, LocalLayout
from tests.support.process_guard import MARK
from tests.support.speed import scaled

INV = [sys.executable, "-m", "invoke"]
LOCAL_UP_TIMEOUT = 90  # seconds `inv local.up` waits for the mesh by default (local.timeout)


def layout_flags(layout: LocalLayout) -> list[str]:
    """The `inv local.up` options that bring up exactly `layout`."""
    return ["--replicas", str(layout.replicas), "--front-port", str(layout.front_port),
            "--trace-proxy-port", str(layout.trace_proxy_port), "--otlp-port", str(layout.otlp_port),
            "--base-port", str(layout.base_port)]


def _environment(env: Mapping[str, str] | None, environ: Mapping[str, str] | None,
                 state_dir: Path | None) -> dict[str, str]:
    state = {"INVOKE_LOCAL_STATE_DIR": str(state_dir)} if state_dir is not None else {}
    # The run's mark (tests/support/process_guard.py) whatever environment a test gives, and the
    # mesh's start-up deadline stretched for a busy machine as every test deadline is.
    kept = {MARK: os.environ[MARK]} if MARK in os.environ else {}
    stretched = {"INVOKE_LOCAL_TIMEOUT": str(round(scaled(LOCAL_UP_TIMEOUT)))}
    return {**stretched, **(os.environ if environ is None else environ), **state, **kept, **(env or {})}


def run_inv(*args: str, state_dir: Path | None = None, env: Mapping[str, str] | None = None,
            environ: Mapping[str, str] | None = None, timeout: float = 120, cwd: Path = PROJECT_ROOT,
            capture: bool = True) -> subprocess.CompletedProcess:
    """`inv ARGS` to its end. `env` goes over `environ` (default: this process's environment);
    `state_dir` is the local mesh's. Without `capture` the output goes where pytest's goes."""
    return subprocess.run([*INV, *args], cwd=cwd, text=True, capture_output=capture, stdin=subprocess.DEVNULL,
                          timeout=scaled(timeout), env=_environment(env, environ, state_dir))


@contextlib.contextmanager
def started_inv(*args: str, state_dir: Path | None = None,
                env: Mapping[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """`inv ARGS` in the background, its output piped; killed on the way out if still running."""
    proc = subprocess.Popen([*INV, *args], cwd=PROJECT_ROOT, text=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_environment(env, None, state_dir))
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
