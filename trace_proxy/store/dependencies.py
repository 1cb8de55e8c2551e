"""Service dependency links from whole traces, as Zipkin's /api/v2/dependencies counts them.

Zipkin's rule (its DependencyLinker), restated: walk each trace's span tree; a SERVER span
links the service of its nearest ancestor with a kind (the caller) to its own service; a
CLIENT span with no child links its service to its remoteEndpoint's (an uninstrumented
callee); a span without kind counts as CLIENT when both endpoints are named; PRODUCER and
CONSUMER spans link to and from their broker. A call is an error when the span, or the
client span it answers, has an `error` tag.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable

from trace_proxy.store.query import service_name


def _tree(spans: list[dict[str, Any]]) -> tuple[list, dict, dict]:
    """(roots, children by span, parent by span), keyed by id(span).

    The server half of a span shared with its client (Zipkin's `shared`) hangs under the
    client half; a span whose parent never arrived becomes a root.
    """
    owner = {}
    for span in spans:
        if not span.get("shared") or span["id"] not in owner:
            owner[span["id"]] = span
    parent_of: dict[int, dict] = {}
    children: dict[int, list] = defaultdict(list)
    roots = []
    for span in spans:
        if span.get("shared") and owner[span["id"]] is not span:
            parent = owner[span["id"]]
        else:
            parent = owner.get(span.get("parentId") or "")
        if parent is None or parent is span:
            roots.append(span)
        else:
            parent_of[id(span)] = parent
            children[id(parent)].append(span)
    roots.sort(key=lambda s: bool(s.get("parentId")))  # the true root first
    return roots, children, parent_of


def _links_of(spans: list[dict[str, Any]], calls: dict, errors: dict) -> None:
    roots, children, parent_of = _tree(spans)
    queue = list(roots)
    while queue:  # breadth first, as Zipkin walks
        span = queue.pop(0)
        kids = children.get(id(span), [])
        queue.extend(kids)
        caller = parent_of.get(id(span))
        while caller is not None and not caller.get("kind"):
            caller = parent_of.get(id(caller))
        _link_one(span, bool(kids), caller, span is roots[0], calls, errors)


def _add(calls, errors, parent, child, error):
    calls[(parent, child)] += 1
    if error:
        errors[(parent, child)] += 1


def _link_one(span, has_children, caller, is_root, calls, errors) -> None:
    kind = span.get("kind")
    if kind == "CLIENT" and has_children:
        return  # the server span below names the callee better
    local, remote = service_name(span) or None, service_name(span, "remoteEndpoint") or None
    if kind is None:
        if not (local and remote):
            return
        kind = "CLIENT"
    if kind in ("SERVER", "CONSUMER"):
        child, parent = local, remote
        if is_root and parent is None:
            return
    elif kind in ("CLIENT", "PRODUCER"):
        parent, child = local, remote
    else:
        return
    error = "error" in (span.get("tags") or {})
    if kind in ("PRODUCER", "CONSUMER"):
        if parent and child:
            _add(calls, errors, parent, child, error)
        return
    caller_name = service_name(caller) if caller else ""
    if caller_name:
        if kind == "CLIENT" and local and caller_name != local:
            _add(calls, errors, caller_name, local, False)  # a client span under another service
        if kind == "SERVER" or parent is None:
            parent = caller_name
        if not error and caller.get("kind") == "CLIENT" and span.get("parentId") == caller["id"]:
            error = "error" in (caller.get("tags") or {})
    if parent and child:
        _add(calls, errors, parent, child, error)


def dependency_links(traces: Iterable[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """[{"parent", "child", "callCount", "errorCount"}], in the order links were first seen."""
    calls: dict[tuple[str, str], int] = defaultdict(int)
    errors: dict[tuple[str, str], int] = defaultdict(int)
    for spans in traces:
        if spans:
            _links_of(spans, calls, errors)
    return [{"parent": p, "child": c, "callCount": n, "errorCount": errors.get((p, c), 0)}
            for (p, c), n in calls.items()]
