"""The log lines of one request, for the span panel: on the local mesh every process writes
its own file (NAME.log, rotated to NAME.log.1) into one folder, which the proxy is told with
--log-dir. A span's lines are those of its service's processes (service1-0: service1-0-app
and service1-0-envoy) that mention the request's x-request-id or trace id, as `inv logs
--request ID` finds them (meshtools uses `mentions` from here: one rule for both)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

MAX_LINES = 200  # per panel; the rest is counted
MAX_LINE_CHARS = 2000


@dataclass
class RequestLogs:
    lines: list[tuple[str, str]]  # (process, text) in each file's order, older file first
    more: int  # matching lines left out
    files: list[str]


def mentions(text: str, ids: set[str]) -> bool:
    """Whether a line belongs to a request: its x-request-id or trace id appears in it.

    JSON lines are matched on their request_id/trace_id fields (a trace id is also a prefix
    of a longer 128-bit one, so both lengths match); other lines on the text.
    """
    if not ids:
        return True
    if text.lstrip().startswith("{"):
        try:
            fields = json.loads(text)
        except ValueError:
            fields = None
        if isinstance(fields, dict):
            values = {str(fields.get("request_id") or ""), str(fields.get("trace_id") or "")} - {""}
            return any(v == i or (len(i) >= 16 and (v.endswith(i) or i.endswith(v) and len(v) >= 16))
                       for v in values for i in ids)
    return any(i in text for i in ids)


def log_files(log_dir: Path, service: str) -> list[Path]:
    """The service's processes' files: SERVICE.log and SERVICE-*.log, each after its backup."""
    names = sorted(p for p in log_dir.glob("*.log") if p.stem == service or p.stem.startswith(f"{service}-"))
    return [f for p in names for f in (p.with_name(p.name + ".1"), p) if f.is_file()]


def request_logs(log_dir: Path, service: str, ids: set[str]) -> RequestLogs:
    found: list[tuple[str, str]] = []
    more = 0
    files = log_files(log_dir, service)
    for path in files:
        process = path.name.split(".log")[0]
        with path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                # The cheap test first: a line that names none of the ids cannot match.
                if any(i in line for i in ids) and mentions(line, ids):
                    if len(found) < MAX_LINES:
                        found.append((process, line.rstrip("\n")[:MAX_LINE_CHARS]))
                    else:
                        more += 1
    return RequestLogs(found, more, [p.name for p in files])
