"""When a trace counts as whole, so that lists never present a trace still arriving.

Envoy reports each span when it ends, from every proxy separately and in batches (the
mesh flushes every 0.5 s), so a trace's spans arrive over about a second, the root
(front-envoy's span, which ends last) usually last of all. A trace is

- whole    when it has a root span (no parentId), every parentId names a span of the
           trace, and no span has arrived for it for the settle time;
- arriving while spans are still coming (less than the settle time since the last one);
- partial  when it went quiet without a root or with a parent missing: spans were lost
           or never reported (an uninstrumented hop, a proxy that died), so it will not
           become whole by waiting.

The settle time (trace-proxy --settle, default 1 s: two of the mesh's flush intervals) is
what the structural check cannot see: a leaf span still on its way leaves no gap.
"""
from __future__ import annotations

from typing import Any, Iterable

WHOLE, ARRIVING, PARTIAL = "whole", "arriving", "partial"


def structurally_whole(spans: Iterable[dict[str, Any]]) -> bool:
    """A root is present and every parent is."""
    spans = list(spans)
    ids = {s.get("id") for s in spans}
    has_root = False
    for span in spans:
        parent = span.get("parentId")
        if not parent:
            has_root = True
        elif parent not in ids:
            return False
    return has_root


def state(spans: list[dict[str, Any]], quiet_for: float, settle: float) -> str:
    if quiet_for < settle:
        return ARRIVING
    return WHOLE if structurally_whole(spans) else PARTIAL
