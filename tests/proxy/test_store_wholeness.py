"""Whole traces only: the store lists a trace once its root and every parent are in and it
has been quiet for the settle time, or (labelled partial) once it is done arriving with
spans lost; never a trace still arriving."""
from __future__ import annotations

import time

import requests

from tests.support.trace_proxy_process import running_proxy
from tests.support.trace_proxy_spans import envoy_trace
from tests.support.waiting import wait_for
from trace_proxy.ingest.zipkin_json import from_v2
from trace_proxy.store.query import TraceQuery
from trace_proxy.store.span_store import SpanStore


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def listed(store: SpanStore) -> dict[str, tuple[int, str]]:
    query = TraceQuery(end_ts=int(time.time() * 1000) + 1000)
    return {spans[0]["traceId"]: (len(spans), state) for spans, state in store.search(query)}


def add(store, spans):
    store.add([from_v2(s) for s in spans])


def test_a_trace_is_listed_only_once_its_root_and_parents_arrived_and_it_settled():
    clock = FakeClock()
    store = SpanStore(max_spans=1000, settle_seconds=1.0, root_wait_seconds=20.0, clock=clock)
    trace = envoy_trace()
    tid = trace[0]["traceId"]
    add(store, trace[1:])  # everything but front-envoy's root span, which Envoy reports last
    clock.now += 5  # the slow stage can keep a running request quiet this long
    assert listed(store) == {}
    assert store.state(tid) == "arriving" and len(store.trace(tid)) == 11  # by id: what arrived
    add(store, trace[:1])
    clock.now += 0.5
    assert listed(store) == {} and store.state(tid) == "arriving"
    clock.now += 0.6
    assert listed(store) == {tid: (12, "whole")} and store.state(tid) == "whole"


def test_a_trace_that_lost_spans_is_listed_as_partial_once_done_arriving():
    clock = FakeClock()
    store = SpanStore(max_spans=1000, settle_seconds=1.0, root_wait_seconds=20.0, clock=clock)
    holed, rootless, whole = envoy_trace(), envoy_trace(), envoy_trace()
    # holed lost stage 1's egress span (its proxy died): the server span below it is an orphan
    add(store, holed[:4] + holed[5:] + rootless[1:] + whole)
    clock.now += 0.5
    assert listed(store) == {}
    clock.now += 1
    assert listed(store) == {whole[0]["traceId"]: (12, "whole"), holed[0]["traceId"]: (11, "partial")}
    assert store.census() == {"traces": 3, "whole": 1, "arriving": 1, "partial": 1, "spans": 34}
    clock.now += 20  # no root within the root wait: lost, never coming
    assert listed(store)[rootless[0]["traceId"]] == (11, "partial")
    add(store, holed[4:5])  # a late span after all: arriving again, then whole
    assert holed[0]["traceId"] not in listed(store)
    clock.now += 1
    assert listed(store)[holed[0]["traceId"]] == (12, "whole")


def test_dependencies_count_only_whole_traces():
    clock = FakeClock()
    store = SpanStore(max_spans=1000, settle_seconds=1.0, clock=clock)
    add(store, envoy_trace() + envoy_trace()[1:])
    clock.now += 2
    now_ms = int(time.time() * 1000) + 1000
    assert store.dependencies(now_ms, 60_000) == [
        {"parent": "front-envoy", "child": "service1-0", "callCount": 1, "errorCount": 0},
        {"parent": "service1-0", "child": "service2-0", "callCount": 5, "errorCount": 0},
    ]


def test_the_real_proxy_never_lists_a_trace_while_its_spans_are_still_arriving():
    with running_proxy("--settle", "0.5") as proxy:
        trace = envoy_trace(request_id="arriving")
        tid = trace[0]["traceId"]
        query = {"annotationQuery": "guid:x-request-id=arriving"}

        def post(spans):
            assert requests.post(f"{proxy.url}/api/v2/spans", json=spans, timeout=5).status_code == 202

        def listing():
            return requests.get(f"{proxy.url}/api/v2/traces", params=query, timeout=5).json()

        post(trace[2:])
        post(trace[1:2])
        assert listing() == []
        assert len(requests.get(f"{proxy.url}/api/v2/trace/{tid}", timeout=5).json()) == 11
        post(trace[:1])
        seen = wait_for(lambda: listing() or None, timeout=10, what="the trace listed once settled")
        assert [len(t) for t in seen] == [12]
        census = requests.get(f"{proxy.url}/api/store", timeout=5).json()
        assert census["whole"] == 1 and census["traces"] == 1 and census["arriving"] == 0


def test_a_trace_with_every_call_answered_is_listed_after_the_shorter_answered_settle_time():
    # Every client span has its server span below it: only a server span's own calls held by
    # another of its proxy's threads can still be on their way, and those come within one flush.
    clock = FakeClock()
    store = SpanStore(max_spans=1000, settle_seconds=1.0, answered_settle_seconds=0.2, clock=clock)
    trace = envoy_trace()
    tid = trace[0]["traceId"]
    add(store, trace)
    clock.now += 0.1
    assert listed(store) == {} and store.state(tid) == "arriving"
    clock.now += 0.15  # 0.25 s quiet: past the answered-settle time, well before the settle time
    assert listed(store) == {tid: (12, "whole")} and store.state(tid) == "whole"
    assert store.census()["whole"] == 1
    now_ms = int(time.time() * 1000) + 1000
    # /dependencies counts what the lists show, as soon as they show it
    assert [link["child"] for link in store.dependencies(now_ms, 60_000)] == ["service1-0", "service2-0"]


def test_a_trace_with_an_unanswered_call_or_a_missing_parent_still_waits_the_whole_settle_time():
    clock = FakeClock()
    store = SpanStore(max_spans=1000, settle_seconds=1.0, answered_settle_seconds=0.2, clock=clock)
    unanswered, holed = envoy_trace(), envoy_trace()
    # unanswered: stage 4's server span is still on its way from service2 (its egress span, a
    # leaf so far, has no answer); holed: stage 1's egress span is missing, its server span an orphan
    add(store, unanswered[:-1] + holed[:4] + holed[5:])
    clock.now += 0.5
    assert listed(store) == {}
    assert store.census()["arriving"] == 2
    now_ms = int(time.time() * 1000) + 1000
    assert store.dependencies(now_ms, 60_000) == []
    clock.now += 0.6  # the settle time: done arriving, as before
    assert listed(store) == {unanswered[0]["traceId"]: (11, "whole"), holed[0]["traceId"]: (11, "partial")}


def test_a_late_span_takes_an_answered_trace_off_the_lists_until_it_is_quiet_again():
    clock = FakeClock()
    store = SpanStore(max_spans=1000, settle_seconds=1.0, answered_settle_seconds=0.2, clock=clock)
    trace = envoy_trace()
    tid = trace[0]["traceId"]
    add(store, trace[:-1])  # stage 4's server span not in yet: stage 4 is unanswered
    clock.now += 0.3
    assert listed(store) == {}
    add(store, trace[-1:])
    clock.now += 0.1
    assert listed(store) == {}
    clock.now += 0.1
    assert listed(store) == {tid: (12, "whole")}


def test_a_shared_span_counts_as_an_answered_call():
    # B3 with a shared span context (Zipkin v1 clients, shared_span_context: true): the callee's
    # SERVER span reuses the caller's CLIENT span id instead of being its child.
    clock = FakeClock()
    store = SpanStore(max_spans=1000, settle_seconds=1.0, answered_settle_seconds=0.2, clock=clock)
    trace = envoy_trace()
    tid = trace[0]["traceId"]
    client, server = trace[2], trace[3]
    shared = {**server, "id": client["id"], "parentId": client["parentId"], "shared": True}
    add(store, [trace[0], trace[1], client, shared])
    clock.now += 0.25
    assert listed(store) == {tid: (4, "whole")}


def test_without_an_answered_settle_time_every_trace_waits_the_settle_time():
    clock = FakeClock()
    store = SpanStore(max_spans=1000, settle_seconds=1.0, clock=clock)
    add(store, envoy_trace())
    clock.now += 0.9
    assert listed(store) == {}
    clock.now += 0.2
    assert len(listed(store)) == 1


def test_the_real_proxy_lists_an_answered_trace_long_before_its_settle_time():
    # A settle time no test waits out: the trace is listed by the answered-settle time alone;
    # one with an unanswered call is not, for as long as that takes.
    with running_proxy("--settle", "600", "--answered-settle", "0.2") as proxy:
        answered, unanswered = envoy_trace(request_id="answered"), envoy_trace(request_id="unanswered")

        def listing(request_id):
            query = {"annotationQuery": f"guid:x-request-id={request_id}"}
            return requests.get(f"{proxy.url}/api/v2/traces", params=query, timeout=5).json()

        for spans in (answered, unanswered[:-1]):
            assert requests.post(f"{proxy.url}/api/v2/spans", json=spans, timeout=5).status_code == 202
        seen = wait_for(lambda: listing("answered") or None, timeout=10, what="the answered trace listed")
        assert [len(t) for t in seen] == [12]
        assert listing("unanswered") == []
        census = requests.get(f"{proxy.url}/api/store", timeout=5).json()
        assert census["whole"] == 1 and census["arriving"] == 1
