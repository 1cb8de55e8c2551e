"""One set of assertions about the trace of `/echo/NAME`, shared by every target's e2e tests.

DESIGN.md's shape: front-envoy (CLIENT) → service1 ingress (SERVER) → 5 × [service1 egress
(CLIENT) → service2 ingress (SERVER)], 12 spans, 12 distinct ids, one root.
"""
from __future__ import annotations

from meshtools.shared.topology import FRONT, SERVICE1, SERVICE2
from meshtools.views.trace_lookup import REQUEST_ID_TAG, SPANS_PER_ECHO

STAGES = 5


def children(spans: list[dict], parent: dict) -> list[dict]:
    return sorted((s for s in spans if s.get("parentId") == parent["id"]), key=lambda s: s["timestamp"])


def service(span: dict) -> str:
    return span.get("localEndpoint", {}).get("serviceName", "")


def assert_echo_trace(spans: list[dict], request_id: str, front: str, service1: str, service2: str,
                      status: int = 200) -> None:
    """`front`, `service1`, `service2`: prefixes of the span service names (pod or instance names)."""
    assert len(spans) == SPANS_PER_ECHO, f"expected {SPANS_PER_ECHO} spans, got {len(spans)}: {spans}"
    ids = [s["id"] for s in spans]
    assert len(set(ids)) == SPANS_PER_ECHO, f"span ids are not distinct: {ids}"
    assert len({s["traceId"] for s in spans}) == 1
    roots = [s for s in spans if not s.get("parentId")]
    assert len(roots) == 1, f"expected one root, got {roots}"
    assert all(s["parentId"] in ids for s in spans if s.get("parentId")), "a parent is missing from the trace"
    assert all(s.get("tags", {}).get(REQUEST_ID_TAG) == request_id for s in spans), "a span lacks the request id"

    root = roots[0]
    assert root["kind"] == "CLIENT" and service(root).startswith(front)
    assert root["tags"]["http.status_code"] == str(status)
    (ingress,) = children(spans, root)
    assert ingress["kind"] == "SERVER" and service(ingress).startswith(service1)
    egress = children(spans, ingress)
    assert len(egress) == STAGES
    for stage, call in enumerate(egress):
        assert call["kind"] == "CLIENT" and service(call) == service(ingress), "egress runs in service1's pod"
        assert call["tags"]["http.url"].endswith(f"/stage/{stage}"), call["tags"]["http.url"]
        (served,) = children(spans, call)
        assert served["kind"] == "SERVER" and service(served).startswith(service2)
        assert served["tags"]["http.status_code"] == "200"


def assert_spans_come_from(spans: list[dict], instances: dict[str, set[str]]) -> None:
    """Every span names the pod (cluster) or instance (local) that made it, as a running one.

    `instances` maps FRONT, SERVICE1 and SERVICE2 to the names running now, from the target
    (kubectl's pod list on the cluster, the layout locally).
    """
    (root,) = [s for s in spans if not s.get("parentId")]
    made_by = [(root, FRONT)]
    for ingress in children(spans, root):
        made_by.append((ingress, SERVICE1))
        for call in children(spans, ingress):
            made_by += [(call, SERVICE1)] + [(served, SERVICE2) for served in children(spans, call)]
    assert len(made_by) == len(spans), "a span is outside the front → service1 → service2 tree"
    for span, source in made_by:
        assert service(span) in instances[source], (
            f"span {span['id']} names {service(span)!r}, not one of the running {source} instances {sorted(instances[source])}")


def assert_error_trace(spans: list[dict], request_id: str, status: int) -> None:
    """A request that failed in service1: the root and service1's span show the status."""
    assert spans, "no spans arrived"
    assert all(s.get("tags", {}).get(REQUEST_ID_TAG) == request_id for s in spans)
    roots = [s for s in spans if not s.get("parentId")]
    assert len(roots) == 1
    assert roots[0]["tags"]["http.status_code"] == str(status)
    assert roots[0]["tags"].get("error") == "true"
