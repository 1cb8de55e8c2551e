"""The store's indexed queries answer exactly what a filter over every stored trace would:
the same traces in the same order for any search, the same dependency links, the same
service, span and remote names and tag values, through arrivals, late spans, settling and
eviction."""
from __future__ import annotations

import time
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.trace_proxy_spans import envoy_trace
from trace_proxy.ingest.zipkin_json import from_v2
from trace_proxy.store import span_store, wholeness
from trace_proxy.store.dependencies import dependency_links
from trace_proxy.store.query import TraceQuery, service_name, trace_timestamp
from trace_proxy.store.span_store import SpanStore

BASE_US = 1_700_000_000_000_000
SERVICES = ["front", "api", "db"]
NAMES = ["get", "put"]
TAGS = [{}, {"error": ""}, {"http.status_code": "500"}, {"http.status_code": "200"}, {"error": "boom", "x": "1"}]
ALL_STATES = frozenset({wholeness.WHOLE, wholeness.PARTIAL, wholeness.ARRIVING})


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@st.composite
def spans_of_trace(draw, number: int):
    """A small trace: a tree under a root that may be missing, with random names and tags."""
    tid = f"{number + 1:016x}"
    count = draw(st.integers(1, 5))
    spans = []
    for i in range(count):
        span = {"traceId": tid, "id": f"{i + 1:016x}", "name": draw(st.sampled_from(NAMES)),
                "kind": draw(st.sampled_from(["CLIENT", "SERVER", None])),
                "timestamp": BASE_US + draw(st.integers(0, 60)) * 1_000_000 + draw(st.integers(0, 999_999)),
                "duration": draw(st.sampled_from([1, 250, 500, 1000])),
                "localEndpoint": {"serviceName": draw(st.sampled_from(SERVICES))},
                "tags": draw(st.sampled_from(TAGS))}
        if span["kind"] is None:
            del span["kind"]
        if draw(st.booleans()):
            span["remoteEndpoint"] = {"serviceName": draw(st.sampled_from(SERVICES))}
        if draw(st.integers(0, 5)) == 0:
            span["annotations"] = [{"timestamp": span["timestamp"], "value": "retry"}]
        if i:
            span["parentId"] = f"{draw(st.integers(1, i)):016x}"
        spans.append(span)
    if count > 1 and draw(st.integers(0, 4)) == 0:
        spans = spans[1:]  # the root never came
    return spans


@st.composite
def histories(draw):
    """Batches of spans (traces cut up and interleaved, some sent late) and clock steps."""
    traces = [draw(spans_of_trace(n)) for n in range(draw(st.integers(1, 12)))]
    pieces = []
    for spans in traces:
        cut = draw(st.integers(0, len(spans)))
        pieces += [spans[:cut], spans[cut:]]
    pieces = [p for p in draw(st.permutations(pieces)) if p]
    return [(piece, draw(st.sampled_from([0.0, 0.5, 2.0, 30.0]))) for piece in pieces]


queries = st.builds(
    lambda service, remote, name, terms, duration, end_s, lookback_s, limit: TraceQuery(
        service_name=service, remote_service_name=remote if service else None, span_name=name,
        annotations=terms, min_duration=duration, end_ts=(BASE_US // 1000) + end_s * 1000,
        lookback=lookback_s * 1000, limit=limit),
    st.sampled_from([None, *SERVICES, "nobody"]), st.sampled_from([None, *SERVICES]),
    st.sampled_from([None, *NAMES]),
    st.sampled_from([{}, {"error": ""}, {"http.status_code": "500"}, {"retry": ""}, {"x": "1", "error": ""}]),
    st.sampled_from([None, 1, 500, 1001]), st.integers(0, 70), st.integers(0, 70), st.integers(1, 5))


def stored_traces(store: SpanStore, ids: set[str]) -> dict[str, list[dict]]:
    return {tid: spans for tid in ids if (spans := store.trace(tid)) is not None}


def brute_force_search(store, ids, query, states):
    found = []
    for tid, spans in stored_traces(store, ids).items():
        trace_state = store.state(tid)
        if trace_state in states and query.matches(spans):
            found.append((trace_timestamp(spans), tid, spans, trace_state))
    found.sort(key=lambda item: (item[0], item[1]), reverse=True)
    return [(spans, trace_state) for _, _, spans, trace_state in found[: query.limit]]


def brute_force_dependencies(store, ids, end_ms, lookback_ms):
    low, high = (end_ms - lookback_ms) * 1000, end_ms * 1000
    window = [spans for tid, spans in stored_traces(store, ids).items()
              if store.state(tid) == wholeness.WHOLE and low <= trace_timestamp(spans) <= high]
    return sorted(dependency_links(window), key=lambda link: (link["parent"], link["child"]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories(), checks=st.lists(queries, min_size=1, max_size=4), max_spans=st.integers(3, 40),
       slice_traces=st.sampled_from([1, 2, 500]))
def test_indexed_queries_answer_what_a_filter_over_every_trace_would(history, checks, max_spans, slice_traces):
    # slice_traces: how much of a backlog a query indexes per hold of the lock (many slices or one)
    with mock.patch.object(span_store, "SLICE_TRACES", slice_traces):
        check_against_brute_force(history, checks, max_spans)


def check_against_brute_force(history, checks, max_spans):
    clock = FakeClock()
    store = SpanStore(max_spans, settle_seconds=1.0, root_wait_seconds=20.0, clock=clock)
    ids: set[str] = set()
    for step, (piece, wait) in enumerate(history):
        store.add([from_v2(s) for s in piece])
        ids.add(piece[0]["traceId"])
        clock.now += wait
        query = checks[step % len(checks)]
        for states in (ALL_STATES, frozenset({wholeness.WHOLE, wholeness.PARTIAL})):
            assert store.search(query, states) == brute_force_search(store, ids, query, states)
        assert store.dependencies(query.end_ts, query.lookback) == \
            brute_force_dependencies(store, ids, query.end_ts, query.lookback)
    every_span = [s for spans in stored_traces(store, ids).values() for s in spans]
    assert store.services() == sorted({service_name(s) for s in every_span} - {""})
    for key in ("error", "http.status_code", "x"):
        assert store.tag_values(key) == sorted({tags[key] for s in every_span if key in (tags := s.get("tags") or {})})
    for service in SERVICES:
        mine = [s for s in every_span if service_name(s) == service]
        assert store.span_names(service) == sorted({s["name"] for s in mine})
        assert store.remote_services(service) == sorted(
            {service_name(s, "remoteEndpoint") for s in mine} - {""})


def test_a_search_never_lists_a_trace_the_store_evicted():
    clock = FakeClock()
    store = SpanStore(max_spans=36, settle_seconds=1.0, clock=clock)
    start = int(time.time() * 1_000_000)
    traces = [envoy_trace(request_id=f"r{n}", start_us=start + n * 1000) for n in range(6)]
    query = TraceQuery(service_name="service2-0", annotations={"component": "proxy"},
                       end_ts=start // 1000 + 1000, limit=10)
    for n, trace in enumerate(traces):
        store.add([from_v2(s) for s in trace])
        clock.now += 2
        store.traces(query)  # the indexes are read between arrivals, and must follow evictions
    listed = [spans[0]["traceId"] for spans in store.traces(query)]
    assert listed == [t[0]["traceId"] for t in reversed(traces[-3:])]
    assert store.dependencies(start // 1000 + 1000, 60_000) == [
        {"parent": "front-envoy", "child": "service1-0", "callCount": 3, "errorCount": 0},
        {"parent": "service1-0", "child": "service2-0", "callCount": 15, "errorCount": 0},
    ]
