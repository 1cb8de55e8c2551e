"""The local mesh's log files as one stream, in time order, each line prefixed with its process.

supervisord writes one file per process in the mesh's logs/ directory and rotates each at
5 MB (one backup, NAME.log.1), so they never grow without bound. `inv logs` reads them here;
`inv traces --id ID --logs` asks for the lines of one request.
"""
from __future__ import annotations

import heapq
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator

from meshtools.local.names import UnknownName, expand
from meshtools.shared import logformat
from meshtools.shared.logs import line_time, mentions

SUPERVISORD = "supervisord"  # its own log: only when asked for by name
EPOCH = datetime.fromtimestamp(0, timezone.utc)


class LogsError(RuntimeError):
    """An expected failure, worded as one sentence that says what to do."""


@dataclass(frozen=True)
class LogLine:
    time: datetime
    process: str
    text: str


def processes(logs_dir: Path) -> list[str]:
    """The processes that have a log file, by name."""
    return sorted(p.stem for p in logs_dir.glob("*.log"))


def select(logs_dir: Path, names: Iterable[str]) -> list[str]:
    """The processes NAMES ask for: exact names, or every process a name begins (service1: each
    replica's app and Envoy). No names: every process but supervisord."""
    known = processes(logs_dir)
    if not known:
        raise LogsError(f"No log files in {logs_dir}; `inv local.up` starts the local mesh.")
    names = [n for n in names if n]
    try:
        return expand(known, names) if names else [p for p in known if p != SUPERVISORD]
    except UnknownName as exc:
        raise LogsError(str(exc)) from None


def sizes(logs_dir: Path, names: Iterable[str]) -> dict[str, int]:
    """How far each process's log file reaches now: `merged` reads up to here, `follow` goes on from here."""
    return {name: _size(logs_dir / f"{name}.log") for name in names}


def read_lines(path: Path, process: str, upto: int | None = None) -> list[LogLine]:
    """A file's lines with their times; a line without one (a traceback's) takes the line before's.

    `upto`: read the current file only this far (bytes), the rotated part (NAME.log.1) whole.
    """
    parts = [(p, None) for p in (path.with_name(path.name + ".1"),) if p.exists()]
    if path.exists():
        parts.append((path, upto))  # the rotated part first
    result: list[LogLine] = []
    pending: list[str] = []
    last = None
    for file, limit in parts:
        data = file.read_bytes() if limit is None else file.read_bytes()[:limit]
        for text in data.decode(errors="replace").splitlines():
            moment = line_time(text)
            if moment is None:
                if last is None:
                    pending.append(text)  # dated by the first line that has a time
                    continue
                moment = last
            elif pending:
                result += [LogLine(moment, process, p) for p in pending]
                pending = []
            last = moment
            result.append(LogLine(moment, process, text))
    result += [LogLine(last or EPOCH, process, p) for p in pending]
    result.sort(key=lambda line: line.time)  # a request's access line is dated when it began
    return result


def merged(logs_dir: Path, names: Iterable[str], since: datetime | None = None,
           ids: set[str] | None = None, upto: dict[str, int] | None = None) -> Iterator[LogLine]:
    """Every line of the chosen processes, in time order; only those since `since` and of `ids`.

    `upto` (from `sizes`): how far to read each file, so that `follow` takes over from there.
    """
    upto = upto or {}
    streams = [read_lines(logs_dir / f"{name}.log", name, upto.get(name)) for name in select(logs_dir, names)]
    for line in heapq.merge(*streams, key=lambda line: line.time):
        if since is not None and line.time < since:
            continue
        if ids and not mentions(line.text, ids):
            continue
        yield line


def prefix_width(names: Iterable[str]) -> int:
    return max((len(n) for n in names), default=0)


def format_line(line: LogLine, width: int) -> str:
    return f"{line.process:<{width}} | {line.text}"


def readable_line(line: LogLine, width: int) -> str:
    """The line for a person (meshtools.shared.logformat): time, process, level, what it says, ids."""
    return logformat.readable(line.text, line.process, width, line.time)


def follow(logs_dir: Path, names: list[str], emit: Callable[[LogLine], None], ids: set[str] | None = None,
           interval: float = 0.2, stop: Callable[[], bool] = lambda: False,
           start: dict[str, int] | None = None) -> None:
    """Emit new lines as the processes write them, from `start` (see `sizes`; default: the ends of
    the files now), until `stop()`. A file that shrank was rotated by supervisord: it is read
    again from its start.
    """
    offsets = dict(start) if start is not None else sizes(logs_dir, names)
    partial = {name: "" for name in names}
    while not stop():
        for name in names:
            path = logs_dir / f"{name}.log"
            size = _size(path)
            if size < offsets[name]:
                offsets[name], partial[name] = 0, ""
            if size == offsets[name]:
                continue
            with path.open("rb") as handle:
                handle.seek(offsets[name])
                chunk = handle.read(size - offsets[name])
            offsets[name] = size
            *complete, partial[name] = (partial[name] + chunk.decode(errors="replace")).split("\n")
            for text in complete:
                if not ids or mentions(text, ids):
                    emit(LogLine(line_time(text) or datetime.now(timezone.utc), name, text))
        time.sleep(interval)


def last_error(path: Path, window: int = 64 * 1024) -> str:
    """The last error line in the end of a log file (its last `window` bytes), readable; "" for none."""
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, _size(path) - window))
            tail = handle.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    for text in reversed(tail):
        if text.strip() and logformat.is_error(text):
            return logformat.brief(text)
    return ""


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
