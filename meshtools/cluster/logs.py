"""The cluster's logs: `kubectl logs` over the project's pods, every container, each line prefixed.

kubectl prints each pod's stream in turn; with `--timestamps` they are put back into one
time order here (following, lines are printed as they come).
"""
from __future__ import annotations

import re
import subprocess
from datetime import datetime
from typing import Callable, Iterable

from meshtools.cluster.kubectl import Kubectl
from meshtools.shared import logformat
from meshtools.shared.logs import mentions, since_seconds
from meshtools.shared.topology import FRONT, SERVICE1, SERVICE2, TRACE_PROXY

APPS = (FRONT, SERVICE1, SERVICE2, TRACE_PROXY)  # the `app` label of each Deployment's pods
MAX_STREAMS = 32  # kubectl follows at most this many containers at once (5 by default: too few)
PREFIX = re.compile(r"^\[pod/([^/\]]+)/([^\]]+)\] (.*)$")  # kubectl's --prefix
STAMPED = re.compile(r"^(\[[^\]]*\] )?(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z) (.*)$")


class LogsError(RuntimeError):
    """An expected failure, worded as one sentence that says what to do."""


def selector(names: Iterable[str]) -> str:
    """The label selector for NAMES (apps: front-envoy, service1, service2, trace-proxy; all by default)."""
    names = [n for n in names if n]
    unknown = [n for n in names if n not in APPS]
    if unknown:
        raise LogsError(f"No app named {', '.join(map(repr, unknown))} in the cluster; the apps are {', '.join(APPS)}.")
    return f"app in ({','.join(names or APPS)})"


def argv(kubectl: Kubectl, names: Iterable[str], since: datetime | None, follow: bool,
         tail: int | None = None) -> list[str]:
    args = ["logs", "-l", selector(names), "--all-containers", "--prefix", "--timestamps",
            f"--max-log-requests={MAX_STREAMS}", f"--tail={-1 if tail is None else tail}"]
    if since is not None:
        args.append(f"--since={since_seconds(since)}s")
    if follow:
        args.append("--follow")
    return kubectl.argv(*args)


def split_stamp(line: str) -> tuple[str, str]:
    """(timestamp, the line with kubectl's timestamp taken out): `[pod/x/c] 2026-…Z text` → `[pod/x/c] text`."""
    match = STAMPED.match(line)
    if not match:
        return "", line
    return match[2], f"{match[1] or ''}{match[3]}"


def readable_line(text: str) -> str:
    """`[pod/NAME/CONTAINER] line` (as `show` emits it) rendered as meshtools.shared.logformat does."""
    match = PREFIX.match(text)
    if not match:
        return text
    return logformat.readable(match[3], f"{match[1]}/{match[2]}", 0)


def show(kubectl: Kubectl, names: Iterable[str], since: datetime | None, follow: bool,
         ids: set[str] | None, emit: Callable[[str], None], tail: int | None = None) -> int:
    """Run kubectl logs and emit its lines (in time order unless following); kubectl's exit code.

    `tail`: the last lines of each container (kubectl's own --tail), None for all."""
    with subprocess.Popen(argv(kubectl, names, since, follow, tail), stdout=subprocess.PIPE, text=True,
                          errors="replace") as proc:
        assert proc.stdout is not None
        if follow:
            for line in proc.stdout:
                _, text = split_stamp(line.rstrip("\n"))
                if not ids or mentions(text.split("] ", 1)[-1], ids):
                    emit(text)
            return proc.wait()
        lines = [split_stamp(line.rstrip("\n")) for line in proc.stdout]
        code = proc.wait()
    for _, text in sorted(lines, key=lambda pair: pair[0]):  # stable: a pod's own order stays
        if not ids or mentions(text.split("] ", 1)[-1], ids):
            emit(text)
    return code
