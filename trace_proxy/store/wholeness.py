"""When a trace counts as whole, so that lists never present a trace still arriving.

Envoy reports each span when it ends, from every proxy separately and in batches (the
mesh's Envoys flush every 0.2 s), so a trace's spans arrive over a fraction of a second, the root
(front-envoy's span, which ends last) usually last of all. A trace is

- whole    when it has a root span (no parentId), every parentId names a span of the
           trace, and no span has arrived for it for the settle time;
- partial  when it is done arriving but a parent is missing: its root came and then the
           settle time passed, or no root came within the root wait. Spans were lost (a
           proxy killed mid-request, an uninstrumented hop): waiting will not help, and
           it is listed, labelled partial;
- arriving otherwise: spans came less than the settle time ago, or the root (whose span
           ends last: front-envoy reports it after every hop below) is not in yet. A
           request still running, e.g. waiting on the slow /stage/3, is quiet for seconds
           without its root; it is never listed.

The settle time (trace-proxy --settle, default 1 s: five of the Envoys' 0.2 s flush
intervals; the local mesh passes 0.5 s) covers what the structural check cannot see: a leaf span still on its way from
another proxy. The root wait (default 20 s) outlasts the front's 15 s route timeout, after
which no request is still running.
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


def shape(spans: list[dict[str, Any]]) -> tuple[bool, bool]:
    """(structurally whole, has a root): what the state needs of the spans, which the
    store works out once per change of the trace rather than per query."""
    return structurally_whole(spans), any(not s.get("parentId") for s in spans)


def state(spans: list[dict[str, Any]], quiet_for: float, settle: float, root_wait: float) -> str:
    return state_of(shape(spans), quiet_for, settle, root_wait)


def state_of(trace_shape: tuple[bool, bool], quiet_for: float, settle: float, root_wait: float) -> str:
    if quiet_for < settle:
        return ARRIVING
    whole, has_root = trace_shape
    if whole:
        return WHOLE
    return PARTIAL if has_root or quiet_for >= root_wait else ARRIVING
