"""The one-pass path for canonical v2 JSON (ingest/zipkin_canonical.py) keeps exactly what the
general path (orjson, from_v2, the store's stored_form) would keep, and leaves everything
else to it; what Envoy sends takes it."""
from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.support.trace_proxy_spans import envoy_trace
from trace_proxy.ingest import zipkin_canonical, zipkin_json
from trace_proxy.store.normalize import stored_form


def general(body: bytes) -> list[dict]:
    """What the store keeps from `body` by way of orjson, from_v2 and stored_form."""
    return [stored_form(span.v2) for span in zipkin_json.parse(orjson.loads(body), 2)]


def canonical(body: bytes) -> list[dict] | None:
    spans = zipkin_canonical.parse(body)
    return None if spans is None else [span.v2 for span in spans]


def envoy_span(**changes) -> dict:
    span = {"traceId": "463ac35c9f6413ad", "id": "a2fb4a1d1a96d312", "parentId": "0f5a1bb4e7d3c2b1",
            "name": "stage 3", "kind": "CLIENT", "timestamp": 1_700_000_000_000_000, "duration": 1_234,
            "localEndpoint": {"serviceName": "service1-0", "ipv4": "127.0.0.1"},
            "remoteEndpoint": {"ipv4": "127.0.0.1", "port": 9000},
            "tags": {"http.method": "GET", "http.status_code": "200", "upstream_cluster": "service2"}}
    span.update(changes)
    return {k: v for k, v in span.items() if v is not ...}  # `...` removes a field


def test_envoy_shaped_spans_take_the_one_pass_path_and_are_kept_alike():
    for body in (json.dumps(envoy_trace()).encode(), json.dumps([envoy_span(), envoy_span(parentId=...)]).encode(),
                 json.dumps(envoy_trace(trace_id="463ac35c9f6413ad")).encode()):
        assert canonical(body) is not None, "what Envoy sends must not fall back to the general path"
        assert canonical(body) == general(body)


def test_unknown_fields_are_left_out_as_from_v2_leaves_them_out():
    body = json.dumps([envoy_span(extra={"anything": 1}, annotations=[{"timestamp": 5, "value": "x", "more": 1}])]).encode()
    assert canonical(body) == general(body)
    assert "extra" not in canonical(body)[0] and canonical(body)[0]["annotations"] == [{"timestamp": 5, "value": "x"}]


@pytest.mark.parametrize("changes", [
    {"traceId": "463AC35C9F6413AD"},  # upper-case: the store lower-cases it
    {"traceId": "0000000000000000463ac35c9f6413ad"},  # 128 bits, high half zero: stored as 64
    {"traceId": "63ac35c9f6413ad"},  # 15 digits: padded
    {"id": "xyz0000000000000"},  # not hex: 400 from the general path
    {"parentId": ""}, {"parentId": None}, {"name": ""}, {"name": "Stage"}, {"timestamp": 0}, {"duration": 0},
    {"localEndpoint": {}}, {"localEndpoint": {"serviceName": "Service1"}}, {"remoteEndpoint": {"port": 0}},
    {"tags": {}}, {"tags": {"http.status_code": 200}}, {"annotations": []}, {"debug": False}, {"shared": False},
    {"timestamp": 1e999}, {"timestamp": 1.5},
])
def test_anything_not_canonical_is_left_to_the_general_path(changes):
    body = json.dumps([envoy_span(), envoy_span(**changes)]).encode()
    assert canonical(body) is None


def test_invalid_bodies_are_left_to_the_general_path_which_words_the_reason():
    for body in (b"", b"[", b"{}", b"[1]", b'[{"id": "a2fb4a1d1a96d312"}]', b'[{"traceId": "\\ud800"}]'):
        assert canonical(body) is None


ids = st.one_of(st.text("0123456789abcdef", min_size=16, max_size=16), st.text("0123456789abcdefABCDEF", max_size=33))
texts = st.one_of(st.sampled_from(["", "service1-0", "Front-Envoy", "stage 3", "GET"]), st.text(max_size=8))
numbers = st.one_of(st.integers(min_value=-1, max_value=2**64), st.sampled_from([0, 1, 1_700_000_000_000_000]), st.floats())
endpoints = st.fixed_dictionaries({}, optional={"serviceName": texts, "ipv4": texts, "ipv6": texts, "port": numbers})
spans = st.fixed_dictionaries(
    {"traceId": ids, "id": ids},
    optional={"parentId": st.one_of(ids, st.none()), "name": texts, "kind": texts, "timestamp": numbers,
              "duration": numbers, "localEndpoint": endpoints, "remoteEndpoint": endpoints,
              "tags": st.dictionaries(texts, st.one_of(texts, numbers, st.booleans()), max_size=3),
              "annotations": st.lists(st.fixed_dictionaries({"timestamp": numbers, "value": texts}), max_size=2),
              "debug": st.booleans(), "shared": st.booleans(), "extra": texts})


# Mostly canonical values, so that a good share of batches takes the one-pass path.
hex16 = st.text("0123456789abcdef", min_size=16, max_size=16)
lower = st.sampled_from(["service1-0", "stage 3", "front-envoy", "échelle", "GET"])
micros = st.integers(min_value=1, max_value=2**63 - 1)
canonical_endpoints = st.fixed_dictionaries({}, optional={"serviceName": lower, "ipv4": lower, "ipv6": lower,
                                                          "port": st.integers(1, 65535)})
canonical_spans = st.fixed_dictionaries(
    {"traceId": st.one_of(hex16, st.text("0123456789abcdef", min_size=32, max_size=32)), "id": hex16},
    optional={"parentId": hex16, "name": lower, "kind": lower, "timestamp": micros, "duration": micros,
              "localEndpoint": canonical_endpoints, "remoteEndpoint": canonical_endpoints,
              "tags": st.dictionaries(texts, texts, min_size=1, max_size=3),
              "annotations": st.lists(st.fixed_dictionaries({"timestamp": st.integers(0, 2**63 - 1), "value": texts}),
                                      min_size=1, max_size=2),
              "debug": st.just(True), "shared": st.just(True), "extra": texts})


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(st.one_of(canonical_spans, spans), min_size=1, max_size=4))
def test_whenever_the_one_pass_path_accepts_a_body_it_keeps_what_the_general_path_keeps(batch):
    try:
        body = json.dumps(batch, allow_nan=False).encode()
    except ValueError:
        return  # NaN/Infinity: not JSON
    fast = canonical(body)
    try:
        slow = general(body)
    except (zipkin_json.SpanError, orjson.JSONDecodeError):
        assert fast is None, "a body the general path refuses must not be accepted by the one-pass path"
        return
    assert fast is None or fast == slow
