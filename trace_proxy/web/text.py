"""How any value from a span is shown in a page: control characters visible, huge values cut."""
from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(value) -> str:
    """Control characters as \\xNN, so they can neither hide text nor upset the page."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", "" if value is None else str(value))


def clip(value: str, limit: int = 200) -> str:
    value = "" if value is None else str(value)
    return value if len(value) <= limit else f"{value[:limit]}… (+{len(value) - limit:,} characters)"
