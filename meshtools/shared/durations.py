"""One syntax for every duration flag: `10` (seconds), `10s`, `1m30s`, `1h`, `1.5s`, `2d`.

`inv load --duration`, `--timeout`, `inv traces --lookback` and `inv logs --since` all read
their value here, so a span that works for one works for all.
"""
from __future__ import annotations

import math
import re

UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
# Units largest first, each at most once: 1h30m, 1m30s, 2d, 0.5s; a bare number is seconds.
_PART = r"(?:(?P<{0}>\d+(?:\.\d+)?){0})?"
DURATION = re.compile("^" + "".join(_PART.format(unit) for unit in UNIT_SECONDS) + "$")
BARE = re.compile(r"^\d+(?:\.\d+)?$")
SYNTAX = "10, 10s, 1m30s or 1h"


def parse_duration(text: str) -> float:
    """Seconds in `text`; ValueError naming the syntax when it is none."""
    value = str(text).strip().lower().replace(" ", "")
    if BARE.match(value):
        return float(value)
    match = DURATION.match(value) if value else None
    if not match or not any(match.groupdict().values()):
        raise ValueError(f"takes a duration like {SYNTAX}, got {text!r}")
    return sum(float(amount) * UNIT_SECONDS[unit] for unit, amount in match.groupdict().items() if amount)


def is_duration(text: str) -> bool:
    try:
        return math.isfinite(parse_duration(text))
    except ValueError:
        return False
