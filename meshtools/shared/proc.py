"""Run the cluster tools (docker, kind, kubectl) with argument lists, never a shell.

A tool that is missing or fails ends the task with one sentence (invoke's `Exit`), not a
traceback. Secrets travel on stdin (`input=`), so they never reach argv or a log.
"""
from __future__ import annotations

import subprocess
from typing import Sequence

from invoke.exceptions import Exit


def run(
    argv: Sequence[str],
    *,
    input: str | None = None,
    capture: bool = False,
    check: bool = True,
    timeout: float | None = None,
) -> subprocess.CompletedProcess:
    """Run `argv`; its output streams to the terminal unless `capture` is set.

    With `check`, a non-zero exit ends the task with the tool's last error line.
    """
    argv = list(argv)
    try:
        result = subprocess.run(
            argv,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None,
            text=True,
            timeout=timeout,
        )
    except FileNotFoundError:
        raise Exit(f"{argv[0]} is not on PATH; run `inv cluster.up` to see how to install it.")
    except subprocess.TimeoutExpired:
        raise Exit(f"`{describe(argv)}` did not finish within {timeout:g}s.")
    if check and result.returncode != 0:
        detail = last_line(result.stderr) if capture else ""
        raise Exit(f"`{describe(argv)}` failed (exit {result.returncode}){': ' + detail if detail else '.'}")
    return result


def ok(argv: Sequence[str], *, timeout: float | None = 60) -> bool:
    """A quiet probe: did `argv` succeed?"""
    try:
        return run(argv, capture=True, check=False, timeout=timeout).returncode == 0
    except Exit:
        return False


def describe(argv: Sequence[str]) -> str:
    """The command for messages: the tool and its first two subcommand words, no values."""
    words, skip = [], False
    for arg in argv[1:]:
        if skip or arg.startswith("-"):
            # `--context NAME` and `--namespace NS` are the only flags placed before a subcommand.
            skip = arg in ("--context", "--namespace")
            continue
        words.append(arg)
    return " ".join([argv[0], *words[:2]])


def last_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""
