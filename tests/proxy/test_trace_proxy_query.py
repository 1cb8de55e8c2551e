"""The trace proxy's Zipkin query API, against the real gunicorn process."""
from __future__ import annotations

import time

import pytest
import requests

from tests.support.trace_proxy_process import running_proxy
from tests.support.trace_proxy_spans import envoy_trace


@pytest.fixture(scope="module")
def proxy():
    with running_proxy("--settle", "0") as running:  # whole as soon as the last span is in
        yield running


def post_v2(proxy, spans, **headers):
    return requests.post(f"{proxy.url}/api/v2/spans", json=spans, headers=headers, timeout=5)


def test_envoy_trace_posted_chunked_is_returned_whole_by_id_in_any_case(proxy):
    spans = envoy_trace()
    trace_id = spans[0]["traceId"]
    # Envoy streams its reports chunked; requests does the same for a generator body.
    import json
    body = (chunk.encode() for chunk in (json.dumps(spans[:6])[:-1], ",", json.dumps(spans[6:])[1:]))
    reply = requests.post(f"{proxy.url}/api/v2/spans", data=body,
                          headers={"Content-Type": "application/json"}, timeout=5)
    assert reply.status_code == 202, reply.text

    got = requests.get(f"{proxy.url}/api/v2/trace/{trace_id.upper()}", timeout=5)
    assert got.status_code == 200
    assert sorted(s["id"] for s in got.json()) == sorted(s["id"] for s in spans)
    assert {s["traceId"] for s in got.json()} == {trace_id}


def test_unknown_or_malformed_trace_id_is_a_plain_text_404_with_a_reason(proxy):
    # meshtools' Zipkin client takes an HTML answer for another server on the wrong port.
    unknown = requests.get(f"{proxy.url}/api/v2/trace/{'e' * 32}", timeout=5)
    assert unknown.status_code == 404 and unknown.headers["Content-Type"].startswith("text/plain")
    assert "not found" in unknown.text
    malformed = requests.get(f"{proxy.url}/api/v2/trace/not-hex", timeout=5)
    assert malformed.status_code == 404 and malformed.headers["Content-Type"].startswith("text/plain")
    assert "hex" in malformed.text


def test_unknown_path_and_wrong_method_answer_plain_text_not_html(proxy):
    missing = requests.get(f"{proxy.url}/api/v2/nothing-here", timeout=5)
    assert missing.status_code == 404 and missing.headers["Content-Type"].startswith("text/plain")
    assert "<" not in missing.text and "/api/v2/nothing-here" in missing.text
    wrong = requests.post(f"{proxy.url}/api/v2/services", timeout=5)
    assert wrong.status_code == 405 and wrong.headers["Content-Type"].startswith("text/plain")
    assert "GET" in wrong.headers["Allow"]


def test_services_and_span_names_list_what_was_received(proxy):
    assert post_v2(proxy, envoy_trace()).status_code == 202
    services = requests.get(f"{proxy.url}/api/v2/services", timeout=5).json()
    assert {"front-envoy", "service1-0", "service2-0"} <= set(services)
    names = requests.get(f"{proxy.url}/api/v2/spans", params={"serviceName": "service1-0"}, timeout=5).json()
    assert {"echo", "stage 0", "stage 4"} <= set(names)


def test_traces_filter_by_request_id_tag_duration_and_service(proxy):
    wanted = envoy_trace(request_id="wanted-request", slow_stage_us=2_500_000)
    other = envoy_trace(request_id="other-request", slow_stage_us=400_000)
    assert post_v2(proxy, wanted + other).status_code == 202

    def trace_ids(**params):
        reply = requests.get(f"{proxy.url}/api/v2/traces", params=params, timeout=5)
        assert reply.status_code == 200, reply.text
        return [trace[0]["traceId"] for trace in reply.json()]

    assert trace_ids(annotationQuery="guid:x-request-id=wanted-request") == [wanted[0]["traceId"]]
    assert trace_ids(annotationQuery="guid:x-request-id=wanted-request and component") == [wanted[0]["traceId"]]
    assert trace_ids(annotationQuery="guid:x-request-id=nobody") == []
    slow = trace_ids(serviceName="service2-0", minDuration=2_000_000)
    assert wanted[0]["traceId"] in slow and other[0]["traceId"] not in slow
    assert other[0]["traceId"] in trace_ids(serviceName="service2-0", minDuration=300_000, maxDuration=500_000)
    assert wanted[0]["traceId"] in trace_ids(serviceName="front-envoy", spanName="front-envoy")
    assert trace_ids(serviceName="no-such-service") == []


def test_traces_are_newest_first_limited_and_windowed(proxy):
    now_us = int(time.time() * 1_000_000)
    old = envoy_trace(request_id="window", start_us=now_us - 3_600_000_000)  # an hour ago
    new = envoy_trace(request_id="window", start_us=now_us - 1_000_000)
    assert post_v2(proxy, new + old).status_code == 202
    query = {"annotationQuery": "guid:x-request-id=window"}

    def ids(**params):
        reply = requests.get(f"{proxy.url}/api/v2/traces", params={**query, **params}, timeout=5)
        return [trace[0]["traceId"] for trace in reply.json()]

    assert ids() == [new[0]["traceId"], old[0]["traceId"]]
    assert ids(limit=1) == [new[0]["traceId"]]
    assert ids(lookback=60_000) == [new[0]["traceId"]]
    assert ids(endTs=now_us // 1000 - 60_000) == [old[0]["traceId"]]


def test_bad_query_parameters_get_400(proxy):
    reply = requests.get(f"{proxy.url}/api/v2/traces", params={"limit": "many"}, timeout=5)
    assert reply.status_code == 400 and "limit" in reply.text
    assert requests.get(f"{proxy.url}/api/v2/spans", timeout=5).status_code == 400
