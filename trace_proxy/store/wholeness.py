"""When a trace counts as whole, so that lists never present a trace still arriving.

Envoy reports each span when it ends, from every proxy separately and in batches (the
mesh's Envoys flush every 0.2 s), so a trace's spans arrive over a fraction of a second, the root
(front-envoy's span, which ends last) usually last of all. A trace is

- whole    when it has a root span (no parentId), every parentId names a span of the
           trace, and no span has arrived for it for the settle time; or, when besides
           every call in it was answered (each CLIENT or PRODUCER span has a span below it:
           a child, or the SERVER/CONSUMER half of a shared span), for the shorter
           answered-settle time;
- partial  when it is done arriving but a parent is missing: its root came and then the
           settle time passed, or no root came within the root wait. Spans were lost (a
           proxy killed mid-request, an uninstrumented hop): waiting will not help, and
           it is listed, labelled partial;
- arriving otherwise: spans came less than the settle time ago, or the root (whose span
           ends last: front-envoy reports it after every hop below) is not in yet. A
           request still running, e.g. waiting on the slow /stage/3, is quiet for seconds
           without its root; it is never listed.

The settle time (trace-proxy --settle, default 1 s: five of the Envoys' 0.2 s flush
intervals; the local mesh passes 0.5 s) covers what the structural check cannot see: a leaf
span still on its way from another proxy. A call's answer is such a leaf (service2's span
below service1's call), so only a trace with every call answered may settle sooner
(--answered-settle; the local mesh passes 0.2 s, one flush interval): what can still be on its
way then is a server span's own calls held by another worker thread of the same Envoy, sent
within one flush. Recorded at the store over 2,545 local-mesh requests (1 to 16 at a time,
load 6 to 13): listed the moment the root and every parent were in, 99 (3.9%) would have been
listed short of spans; with every call answered too, 13 (0.5%); with every call answered and
0.15 or 0.2 s of quiet, none. The root wait (default 20 s) outlasts the front's 15 s route
timeout, after which no request is still running.
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


CALLS = frozenset({"CLIENT", "PRODUCER"})  # span kinds whose answer is another span, below them
ANSWERS = frozenset({"SERVER", "CONSUMER"})  # the far side's half of a shared span (one id, two spans)


def calls_answered(spans: Iterable[dict[str, Any]]) -> bool:
    """Every CLIENT or PRODUCER span has a span below it: a child (its own id as parentId),
    or the SERVER/CONSUMER half of a shared span (its own id, from the callee)."""
    spans = list(spans)
    below = {s.get("parentId") for s in spans} | {s.get("id") for s in spans if s.get("kind") in ANSWERS}
    return all(s.get("id") in below for s in spans if s.get("kind") in CALLS)


def shape(spans: list[dict[str, Any]]) -> tuple[bool, bool, bool]:
    """(structurally whole, has a root, every call answered): what the state needs of the
    spans, which the store works out once per change of the trace rather than per query."""
    whole = structurally_whole(spans)
    return whole, any(not s.get("parentId") for s in spans), whole and calls_answered(spans)


def state(spans: list[dict[str, Any]], quiet_for: float, settle: float, root_wait: float,
          answered_settle: float | None = None) -> str:
    return state_of(shape(spans), quiet_for, settle, root_wait, answered_settle)


def state_of(trace_shape: tuple[bool, bool, bool], quiet_for: float, settle: float, root_wait: float,
             answered_settle: float | None = None) -> str:
    """`answered_settle`: the quiet time that does for a trace with every call answered
    (None: the settle time, as for any other)."""
    whole, has_root, answered = trace_shape
    if answered and answered_settle is not None and quiet_for >= answered_settle:
        return WHOLE
    if quiet_for < settle:
        return ARRIVING
    if whole:
        return WHOLE
    return PARTIAL if has_root or quiet_for >= root_wait else ARRIVING
