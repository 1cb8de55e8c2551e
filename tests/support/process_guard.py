"""No process outlives the test run that started it.

A timed-out or failed test left a whole mesh (supervisord, apps, a trace proxy) running 19
minutes after pytest ended: supervisord daemonizes, so it is no child of pytest's any more.
Every process a test starts inherits this run's mark in its environment (supervisord passes
it on to what it starts), so at the end of the run each process group holding the mark is
stopped, and SIGTERM (what `timeout` sends) ends the run the way Ctrl-C does, fixtures and all.

Used by tests/conftest.py; also a pytest plugin (`-p tests.support.process_guard`) for runs
outside tests/.
"""
from __future__ import annotations

import os
import signal
import time
import uuid

import psutil
import pytest

MARK = "ENVOY_TRACING_TEST_RUN"  # a comma separated list: a nested run keeps its parent's mark too
GRACE_SECONDS = 5.0


def mark_this_run() -> str:
    token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    os.environ[MARK] = ",".join(filter(None, [os.environ.get(MARK), token]))
    return token


def marked(token: str) -> list[psutil.Process]:
    """Live processes (other than this one) whose environment carries `token`."""
    found = []
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        try:
            if token in proc.environ().get(MARK, "").split(",") and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def stop_marked(token: str, grace: float = GRACE_SECONDS) -> list[str]:
    """Stop every process group holding a process with `token` (SIGTERM, then SIGKILL after
    `grace`); processes in this run's own group are signalled one by one. What was left, described."""
    left = marked(token)
    described = []
    own_group = os.getpgrp()
    for proc in left:
        try:
            described.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
        except psutil.Error:
            continue
    for sig in (signal.SIGTERM, signal.SIGKILL):
        groups = set()
        for proc in left:
            try:
                group = os.getpgid(proc.pid)
                if group == own_group:
                    proc.send_signal(sig)
                else:
                    groups.add(group)
            except (ProcessLookupError, psutil.Error):
                continue
        for group in groups:
            try:
                os.killpg(group, sig)
            except (ProcessLookupError, PermissionError):
                continue
        deadline = time.monotonic() + grace
        while (left := marked(token)) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not left:
            break
    return described


def restore_sigint() -> None:
    """Run as a background job (`pytest &`), pytest starts with SIGINT ignored, and every child
    inherits that: the Ctrl-C tests then send SIGINT to processes that cannot hear it. A
    handler of our own is reset to the default in each child at exec."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _terminated(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")  # pytest then tears down, as on Ctrl-C


_LEFT = pytest.StashKey[list]()
_TOKEN = pytest.StashKey[str]()


def pytest_configure(config):
    config.stash[_TOKEN] = mark_this_run()
    restore_sigint()
    signal.signal(signal.SIGTERM, _terminated)


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind(request):
    """Whatever happens in the run, no process it started outlives it."""
    yield
    request.config.stash[_LEFT] = stop_marked(request.config.stash[_TOKEN])


def pytest_unconfigure(config):
    # Also after a run cut short before the session fixture's end (a crash, a second SIGTERM).
    if _TOKEN in config.stash:
        config.stash.setdefault(_LEFT, []).extend(stop_marked(config.stash[_TOKEN], grace=1.0))


def pytest_terminal_summary(terminalreporter, config):
    left = config.stash.get(_LEFT, [])
    if left:
        terminalreporter.section("processes the tests left behind (stopped now)")
        for line in left:
            terminalreporter.write_line(line)
