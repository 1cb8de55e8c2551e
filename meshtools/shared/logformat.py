"""One log line read for a person: its time, level and what it says, whichever process wrote it.

The mesh's processes write four kinds of lines (see meshtools.shared.logs): JSON (the app's
request and error lines, every Envoy's access log), Envoy's own `[time][pid][level][component]`,
gunicorn's `[time] [pid] [LEVEL]` and Python logging's `time,ms LEVEL name: message`. `read`
takes any of them apart; `readable` puts one back together as `inv logs` shows it on a terminal,
and `is_error` is what `inv status` calls a process's last error line.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

from meshtools.shared.logs import line_time

ENVOY = re.compile(r"^\[[^\]]+\]\[\d+\]\[(?P<level>\w+)\]\[[^\]]*\] (?:\[[^\]]*\] )?(?P<message>.*)$")
GUNICORN = re.compile(r"^\[[^\]]+\] \[\d+\] \[(?P<level>\w+)\] (?P<message>.*)$")
PYTHON_LOGGING = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?P<level>[A-Z]+) (?P<message>.*)$")
LEVELS = {"warning": "WARN", "warn": "WARN", "err": "ERROR", "error": "ERROR", "critical": "CRIT",
          "fatal": "CRIT", "info": "INFO", "debug": "DEBUG", "trace": "DEBUG"}
ERROR_LEVELS = ("ERROR", "CRIT")
TRACEBACK = re.compile(r"^(Traceback \(most recent call last\)|\w+(Error|Exception)\b.*:)")
SHOWN_FIELDS = ("time", "service", "pod", "method", "path", "status", "duration_ms", "request_id", "trace_id")


@dataclass(frozen=True)
class Parsed:
    level: str  # INFO, WARN, ERROR, CRIT, DEBUG
    message: str  # what the line says, without its time, level or ids
    request_id: str = ""
    trace_id: str = ""


def _level(word: str) -> str:
    return LEVELS.get(word.lower(), word.upper()[:5])


def _json_line(fields: dict) -> Parsed:
    status = str(fields.get("status") or "")
    error = fields.get("error")
    if error or status.startswith("5"):
        level = "ERROR"
    elif status.startswith("4") or (fields.get("response_flags") not in (None, "", "-")):
        level = "WARN"
    else:
        level = "INFO"
    words = []
    if fields.get("method") or fields.get("path"):
        words += [str(fields.get("method") or "-"), str(fields.get("path") or "-")]
    if status:
        words.append(status)
    if fields.get("duration_ms") not in (None, ""):
        words.append(f"{fields['duration_ms']}ms")
    if fields.get("response_flags") not in (None, "", "-"):
        words.append(f"flags={fields['response_flags']}")
    if error:
        words.append(str(error))
    # What else the line says (an upstream's url, a reason), as key=value; ids come last, apart.
    words += [f"{key}={value}" for key, value in fields.items()
              if key not in SHOWN_FIELDS and key not in ("error", "response_flags") and value not in (None, "", "-")
              and key not in ("upstream_cluster", "upstream_host", "attempts")]
    return Parsed(level, " ".join(words), str(fields.get("request_id") or "").strip("-"),
                  str(fields.get("trace_id") or "").strip("-"))


def read(text: str) -> Parsed:
    """What one line says, whoever wrote it; an unknown shape is its own message at level INFO."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            fields = json.loads(stripped)
        except ValueError:
            fields = None
        if isinstance(fields, dict):
            return _json_line(fields)
    for pattern in (ENVOY, GUNICORN, PYTHON_LOGGING):
        if match := pattern.match(stripped):
            return Parsed(_level(match["level"]), match["message"])
    if TRACEBACK.match(stripped):
        return Parsed("ERROR", stripped)
    return Parsed("INFO", text.rstrip())


def is_error(text: str) -> bool:
    return read(text).level in ERROR_LEVELS


def brief(text: str) -> str:
    """An error line for a narrow column (`inv status`): `18:00:02 too many chrises name=chris`."""
    moment = line_time(text)
    parsed = read(text)
    return f"{moment.astimezone().strftime('%H:%M:%S')} {parsed.message}" if moment else parsed.message


def readable(text: str, process: str, width: int, moment: datetime | None = None) -> str:
    """`18:27:45.123 service1-1-app  INFO  GET /echo/x 200 12.5ms req=… trace=…` (local time)."""
    moment = moment or line_time(text)
    stamp = moment.astimezone().strftime("%H:%M:%S.%f")[:-3] if moment else " " * 12
    parsed = read(text)
    ids = "".join(f" {label}={value}" for label, value in (("req", parsed.request_id), ("trace", parsed.trace_id))
                  if value)
    return f"{stamp} {process:<{width}} {parsed.level:<5} {parsed.message}{ids}"
