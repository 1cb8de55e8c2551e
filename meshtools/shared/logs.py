"""What both targets' `inv logs` share: a line's time, `--since`, and which lines a request left
(`mentions`, which the trace proxy's span panel uses too: one rule, defined there).

Every process writes a time on its lines, each in its own format: the app's and Envoy's
access log JSON (`"time": "2026-11-26T18:27:45.123Z"`, UTC), Envoy's own log
(`[2026-11-26 18:27:45.123][pid][level]…`, local time), gunicorn
(`[2026-11-26 18:27:45 +0000] …`) and Python's logging (`2026-11-26 18:27:45,123 …`, local time).
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from trace_proxy.web.logs import mentions  # noqa: F401  (re-exported: meshtools' callers import it from here)
from meshtools.shared.durations import SYNTAX, parse_duration

ISO_Z = re.compile(r'"time":\s*"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)Z"')
ENVOY = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})\]")
GUNICORN = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) ([+-]\d{4})\]")
PYTHON_LOGGING = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ")


def line_time(text: str) -> datetime | None:
    """The time a log line was written, as an aware UTC datetime; None when it names none."""
    if match := ISO_Z.search(text[:200]):
        return datetime.fromisoformat(match[1]).replace(tzinfo=timezone.utc)
    if match := ENVOY.match(text):
        return _local(datetime.fromisoformat(match[1]))
    if match := GUNICORN.match(text):
        return datetime.strptime(f"{match[1]} {match[2]}", "%Y-%m-%d %H:%M:%S %z").astimezone(timezone.utc)
    if match := PYTHON_LOGGING.match(text):
        return _local(datetime.fromisoformat(f"{match[1]}.{match[2]}"))
    return None


def _local(naive: datetime) -> datetime:
    return naive.astimezone().astimezone(timezone.utc)


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """`--since`: a duration back from now (10, 30s, 1m30s, 2h) or a time (2026-11-26T18:00, UTC unless it says)."""
    now = now or datetime.now(timezone.utc)
    text = value.strip()
    try:
        return now - timedelta(seconds=parse_duration(text))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--since takes a duration like {SYNTAX}, or a time like 2026-11-26T18:00, "
                         f"got {value!r}.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def since_seconds(moment: datetime, now: datetime | None = None) -> int:
    """Whole seconds from `moment` to now, at least 1: kubectl's --since wants a duration."""
    now = now or datetime.now(timezone.utc)
    return max(1, round((now - moment).total_seconds()))
