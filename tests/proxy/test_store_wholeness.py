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
