"""Every Zipkin v2 query endpoint and parameter, checked against the shapes Zipkin's OpenAPI
spec (openzipkin/zipkin-api, zipkin2-api.yaml) gives them, against the real proxy process.

The schemas below are written from the spec's text, not copied from its file.
"""
from __future__ import annotations

import time

import jsonschema
import pytest
import requests

from tests.support.trace_proxy_process import running_proxy
from tests.support.trace_proxy_spans import envoy_trace

HEX_ID = {"type": "string", "pattern": "^[0-9a-f]{16}$"}
ENDPOINT = {"type": "object", "additionalProperties": False, "properties": {
    "serviceName": {"type": "string", "pattern": "^[^A-Z]*$"},  # the spec: lower-case label
    "ipv4": {"type": "string"}, "ipv6": {"type": "string"}, "port": {"type": "integer"}}}
SPAN = {
    "type": "object", "required": ["traceId", "id"], "additionalProperties": False,
    "properties": {
        "traceId": {"type": "string", "pattern": "^[0-9a-f]{16}([0-9a-f]{16})?$"},
        "id": HEX_ID, "parentId": HEX_ID,
        "name": {"type": "string", "pattern": "^[^A-Z]*$"},
        "kind": {"enum": ["CLIENT", "SERVER", "PRODUCER", "CONSUMER"]},
        "timestamp": {"type": "integer", "minimum": 1}, "duration": {"type": "integer", "minimum": 1},
        "debug": {"type": "boolean"}, "shared": {"type": "boolean"},
        "localEndpoint": ENDPOINT, "remoteEndpoint": ENDPOINT,
        "annotations": {"type": "array", "items": {"type": "object", "required": ["timestamp", "value"],
                                                    "properties": {"timestamp": {"type": "integer"},
                                                                   "value": {"type": "string"}}}},
        "tags": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
TRACE = {"type": "array", "items": SPAN}
LIST_OF_TRACES = {"type": "array", "items": TRACE}
STRINGS = {"type": "array", "items": {"type": "string"}}
DEPENDENCY_LINKS = {"type": "array", "items": {
    "type": "object", "required": ["parent", "child", "callCount"], "additionalProperties": False,
    "properties": {"parent": {"type": "string"}, "child": {"type": "string"},
                   "callCount": {"type": "integer", "minimum": 1}, "errorCount": {"type": "integer", "minimum": 0}}}}


@pytest.fixture(scope="module")
def proxy():
    env = {"AUTOCOMPLETE_KEYS": "http.method,upstream_cluster"}
    with running_proxy("--settle", "0", env=env) as running:
        yield running


def get(proxy, path, schema=None, status=200, **params):
    reply = requests.get(f"{proxy.url}/api/v2/{path}", params=params, timeout=5)
    assert reply.status_code == status, (path, params, reply.text)
    if status != 200:
        assert reply.headers["Content-Type"].startswith("text/plain") and reply.text.strip()
        return reply.text
    assert reply.headers["Content-Type"].startswith("application/json")
    if schema is not None:
        jsonschema.validate(reply.json(), schema)
    return reply.json()


def post(proxy, spans):
    reply = requests.post(f"{proxy.url}/api/v2/spans", json=spans, timeout=5)
    assert reply.status_code == 202, reply.text


def mixed_case_trace(request_id: str) -> list[dict]:
    """A trace whose client spelled names in capitals and sent typed tag values."""
    spans = envoy_trace(request_id=request_id)
    spans[0]["localEndpoint"]["serviceName"] = "Front-Envoy"
    spans[0]["remoteEndpoint"] = {"serviceName": "Service1-0"}
    spans[1]["name"] = "Echo GET"
    spans[1]["tags"].update({"http.status_code": 500, "retried": True, "ratio": 0.25, "none": None,
                             "http.method": "GET", "upstream_cluster": "service1"})
    spans[1]["annotations"] = [{"timestamp": spans[1]["timestamp"] + 5, "value": "Retried"}]
    spans[4]["tags"]["upstream_cluster"] = "service2"
    return spans


@pytest.fixture(scope="module")
def stored(proxy):
    now_us = int(time.time() * 1_000_000)
    mixed = mixed_case_trace("spec-mixed")
    old = envoy_trace(request_id="spec-old", start_us=now_us - 7_200_000_000)  # two hours ago
    failing = envoy_trace(request_id="spec-failing")
    failing[1]["tags"]["error"] = "true"  # service1's ingress answered 500
    post(proxy, mixed + old + failing)
    return {"mixed": mixed, "old": old, "failing": failing, "now_ms": now_us // 1000 + 1000}


def test_services_spans_and_remote_services_are_lower_case_string_lists(proxy, stored):
    services = get(proxy, "services", STRINGS)
    assert {"front-envoy", "service1-0", "service2-0"} <= set(services) and "Front-Envoy" not in services
    assert "echo get" in get(proxy, "spans", STRINGS, serviceName="service1-0")
    assert "echo get" in get(proxy, "spans", STRINGS, serviceName="SERVICE1-0")  # any case finds it
    assert get(proxy, "remoteServices", STRINGS, serviceName="front-envoy") == ["service1-0"]
    get(proxy, "spans", status=400)
    get(proxy, "remoteServices", status=400)


def test_stored_spans_have_the_spec_shape_with_string_tags(proxy, stored):
    tid = stored["mixed"][0]["traceId"]
    trace = get(proxy, f"trace/{tid}", TRACE)
    ingress = next(s for s in trace if s["id"] == stored["mixed"][1]["id"])
    assert ingress["name"] == "echo get"
    assert ingress["tags"]["http.status_code"] == "500" and ingress["tags"]["retried"] == "true"
    assert ingress["tags"]["ratio"] == "0.25" and ingress["tags"]["none"] == "null"
    assert ingress["annotations"] == [{"timestamp": stored["mixed"][1]["timestamp"] + 5, "value": "Retried"}]
    get(proxy, f"trace/{'f' * 32}", status=404)


def test_traces_takes_every_parameter_of_the_spec(proxy, stored):
    def ids(**params):
        return [t[0]["traceId"] for t in get(proxy, "traces", LIST_OF_TRACES, **params)]

    mixed, old, failing = (stored[k][0]["traceId"] for k in ("mixed", "old", "failing"))
    assert set(ids(serviceName="Front-Envoy")) >= {mixed, failing}  # lookback: a day by default
    assert ids(spanName="echo get") == [mixed]
    assert ids(serviceName="service1-0", spanName="ECHO GET") == [mixed]
    assert ids(serviceName="service2-0", spanName="echo get") == []  # the name is service1's
    assert ids(annotationQuery="retried") == [mixed]  # an annotation value
    assert ids(annotationQuery="error") == [failing]  # a tag key
    assert ids(annotationQuery="http.status_code=500 and upstream_cluster=service1") == [mixed]
    assert ids(annotationQuery="http.status_code=500 and upstream_cluster=elsewhere") == []
    assert mixed in ids(minDuration=1_900_000)
    assert ids(minDuration=1_900_001, maxDuration=1_999_999) == []
    get(proxy, "traces", status=400, maxDuration=5)  # only valid with minDuration
    assert old in ids(lookback=3 * 3_600_000) and old not in ids(lookback=3_600_000)
    assert ids(endTs=stored["now_ms"] - 3_600_000, annotationQuery="guid:x-request-id=spec-old") == [old]
    assert len(ids(limit=1)) == 1
    post(proxy, [s for _ in range(12) for s in envoy_trace(request_id="spec-many")])
    assert len(ids()) == 10  # limit's default
    for bad in ({"limit": "ten"}, {"endTs": "-5"}, {"lookback": "x"}, {"minDuration": "0"}):
        get(proxy, "traces", status=400, **bad)


def test_trace_many_returns_the_known_traces_of_at_least_two_ids(proxy, stored):
    mixed, failing = stored["mixed"][0]["traceId"], stored["failing"][0]["traceId"]
    found = get(proxy, "traceMany", LIST_OF_TRACES, traceIds=f"{mixed},{failing.upper()},{'e' * 16}")
    assert sorted(t[0]["traceId"] for t in found) == sorted([mixed, failing])
    assert all(len(t) == 12 for t in found)
    assert get(proxy, "traceMany", LIST_OF_TRACES, traceIds=f"{'e' * 16},{'d' * 32}") == []
    get(proxy, "traceMany", status=400)  # required
    get(proxy, "traceMany", status=400, traceIds=mixed)  # fewer than two: use /trace/{id}
    get(proxy, "traceMany", status=400, traceIds=f"{mixed},{mixed}")  # redundant
    get(proxy, "traceMany", status=400, traceIds=f"{mixed},not-hex")  # malformed


def test_dependencies_link_callers_to_callees_with_errors_in_the_window(proxy, stored):
    links = get(proxy, "dependencies", DEPENDENCY_LINKS, endTs=stored["now_ms"], lookback=60_000)
    by_pair = {(l["parent"], l["child"]): l for l in links}
    front = by_pair[("front-envoy", "service1-0")]
    inner = by_pair[("service1-0", "service2-0")]
    # Within the last minute: the mixed-case and failing traces, and the ten spec-many ones if
    # that test ran first; five service2 calls for every front-envoy call either way.
    assert inner["callCount"] == 5 * front["callCount"] and front["callCount"] >= 2
    assert front["errorCount"] == 1 and inner["errorCount"] == 0  # the failing trace's ingress
    older = get(proxy, "dependencies", DEPENDENCY_LINKS, endTs=stored["now_ms"] - 3_600_000, lookback=7_200_000)
    assert {(l["parent"], l["child"], l["callCount"]) for l in older} == {
        ("front-envoy", "service1-0", 1), ("service1-0", "service2-0", 5)}  # the old trace alone
    get(proxy, "dependencies", status=400)  # endTs is required
    get(proxy, "dependencies", status=400, endTs="soon")


def test_autocomplete_keys_are_the_configured_ones_and_values_come_from_the_tags(proxy, stored):
    assert get(proxy, "autocompleteKeys", STRINGS) == ["http.method", "upstream_cluster"]
    assert get(proxy, "autocompleteValues", STRINGS, key="upstream_cluster") == ["service1", "service2"]
    assert get(proxy, "autocompleteValues", STRINGS, key="http.method") == ["GET"]
    assert get(proxy, "autocompleteValues", STRINGS, key="guid:x-request-id") == []  # not configured
    get(proxy, "autocompleteValues", status=400)
