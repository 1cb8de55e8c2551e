"""No span is lost for another's fault on the way to Honeycomb.

The stand-in refuses what Honeycomb refuses: a batch that is not strict JSON is refused
whole (400), an event Honeycomb cannot take gets its own error status inside a 200.
"""
from __future__ import annotations

import concurrent.futures
import functools
import gzip
import json
import logging
import math
import secrets
import time

import pytest
import requests

from tests.support.waiting import wait_for
from tests.support.honeycomb_standin import MALFORMED, TOO_MANY_COLUMNS, honeycomb_standin
from tests.support.trace_proxy_process import running_proxy
from trace_proxy import create_app
from trace_proxy.settings import Settings
from trace_proxy.sinks.honeycomb_events import json_safe

KEY = "hcaik_standin_" + secrets.token_hex(8)


@pytest.fixture
def forwarding(request):
    """An in-process proxy forwarding to a fresh stand-in; yields (client, standin, app)."""
    options = getattr(request, "param", {})
    with honeycomb_standin(**options) as standin:
        app = create_app(Settings(writekey=KEY, api_host=standin.url, dataset="faults"))
        try:
            yield app.test_client(), standin, app
        finally:
            app.extensions["trace_proxy"].close()


def healthy(trace_id: str, n: int, first: int = 1) -> list[dict]:
    return [{"traceId": trace_id, "id": f"{first + i:016x}", "name": "ok", "timestamp": 1_700_000_000_000_000,
             "duration": 5, "localEndpoint": {"serviceName": "neighbour"}, "tags": {"n": str(i)}}
            for i in range(n)]


def post_raw(client, version: int, body: str):
    return client.post(f"/api/v{version}/spans", data=body.encode("utf-8", "surrogatepass"),
                       content_type="application/json")


def counted(client, predicate, what: str) -> dict:
    """/metrics.json once `predicate` holds: Honeycomb's answer is counted just after it arrives."""
    def check():
        metrics = client.get("/metrics.json").get_json()
        return metrics if predicate(metrics) else None
    return wait_for(check, 10, what)


def events_of(standin, trace_id: str) -> dict[str, dict]:
    return {e["data"]["id"]: e["data"] for e in standin.events() if e["data"]["traceId"] == trace_id}


def test_the_standin_refuses_a_batch_with_a_bare_infinity_whole(forwarding):
    """What Python's json (and so libhoney) wrote for an infinite value: Honeycomb refuses it all."""
    _, standin, _ = forwarding
    body = gzip.compress(json.dumps([{"data": {"ok": 1}}, {"data": {"x": math.inf}}]).encode())
    reply = requests.post(f"{standin.url}/1/batch/faults", data=body, timeout=5,
                          headers={"Content-Encoding": "gzip", "X-Honeycomb-Team": KEY})
    assert reply.status_code == 400 and reply.json() == {"error": MALFORMED}
    assert standin.stats()["refused_batches"] == 1 and standin.events() == []


def test_non_finite_values_travel_as_strings_and_neighbours_arrive(forwarding):
    client, standin, _ = forwarding
    v1_trace, v2_trace, other = secrets.token_hex(8), secrets.token_hex(8), secrets.token_hex(8)
    v1 = [{"traceId": v1_trace, "id": "00000000000000a1", "name": "v1", "timestamp": 1_700_000_000_000_000,
           "binaryAnnotations": [{"key": k, "value": v, "endpoint": {"serviceName": "old"}}
                                 for k, v in (("a", "Infinity"), ("b", "inf"), ("c", "-Infinity"), ("d", "NaN"),
                                              ("e", "1e999"), ("ratio", "0.5"))]}]
    assert client.post("/api/v1/spans", json=v1 + healthy(v1_trace, 20, first=2)).status_code == 202
    # 1e999 is valid JSON text that no double can hold: typed JSON tags, written by hand.
    v2_bad = ('{"traceId": "%s", "id": "00000000000000b1", "name": "v2", "timestamp": 1700000000000000, '
              '"tags": {"big": 1e999, "small": -1e999, "huge": 123456789012345678901234567890}}'
              % v2_trace)
    body = "[" + v2_bad + "," + json.dumps(healthy(v2_trace, 30, first=2))[1:]
    assert post_raw(client, 2, body).status_code == 202
    assert client.post("/api/v2/spans", json=healthy(other, 50)).status_code == 202

    standin.wait_for(lambda _: len(standin.events()) >= 102, "every event")
    assert standin.stats()["refused_batches"] == 0 and standin.stats()["rejected"] == 0
    old = events_of(standin, v1_trace)["00000000000000a1"]
    assert (old["a"], old["b"], old["c"], old["d"], old["e"], old["ratio"]) == (
        "Infinity", "inf", "-Infinity", "NaN", "1e999", 0.5)
    new = events_of(standin, v2_trace)["00000000000000b1"]
    assert new["big"] == "Infinity" and new["small"] == "-Infinity"
    assert new["huge"] in ("123456789012345678901234567890", 1.2345678901234568e29)
    assert len(events_of(standin, v1_trace)) == 21 and len(events_of(standin, v2_trace)) == 31
    assert len(events_of(standin, other)) == 50
    counted(client, lambda m: m["forwarded"].get("honeycomb") == 102, "102 events counted as forwarded")


@pytest.mark.parametrize("forwarding", [{"max_columns": 40}], indirect=True)
def test_an_event_honeycomb_refuses_is_counted_and_logged_the_rest_delivered(forwarding, caplog):
    client, standin, _ = forwarding
    trace_id = secrets.token_hex(8)
    wide = {"traceId": trace_id, "id": "00000000000000ff", "name": "wide", "tags": {f"t{i}": "v" for i in range(60)}}
    spans = healthy(trace_id, 10) + [wide] + healthy(trace_id, 10, first=11)
    with caplog.at_level(logging.WARNING, logger="trace_proxy.honeycomb"):
        assert client.post("/api/v2/spans", json=spans).status_code == 202
        standin.wait_for(lambda _: standin.stats()["events"] >= 21, "21 events")
        metrics = counted(client, lambda m: m["dropped"].get("honeycomb"), "the refused event counted")
    assert standin.stats()["rejected"] == 1 and standin.stats()["refused_batches"] == 0
    assert set(events_of(standin, trace_id)) == {s["id"] for s in spans} - {"00000000000000ff"}
    assert metrics["forwarded"]["honeycomb"] == 20
    assert metrics["dropped"]["honeycomb"] == {"rejected": 1}
    assert f"Honeycomb refused the event of span 00000000000000ff (status 400): {TOO_MANY_COLUMNS}" in caplog.text
    assert KEY not in caplog.text


def test_a_string_that_is_not_unicode_is_scrubbed_not_fatal(forwarding):
    """A lone surrogate escape is valid JSON text but no UTF-8: Honeycomb could not read it."""
    client, standin, _ = forwarding
    trace_id = secrets.token_hex(8)
    odd = '{"traceId": "%s", "id": "00000000000000c1", "name": "odd", "tags": {"s": "a\\ud800b"}}' % trace_id
    body = "[" + odd + "," + json.dumps(healthy(trace_id, 5, first=2))[1:]
    assert post_raw(client, 2, body).status_code == 202
    standin.wait_for(lambda _: len(events_of(standin, trace_id)) >= 6, "6 events")
    assert events_of(standin, trace_id)["00000000000000c1"]["s"] == "a\ufffdb"  # as a UTF-8 reader reads it


def test_json_safe_keeps_finite_values_as_they_are():
    assert json_safe(1.5) == 1.5 and json_safe(-(2**63)) == -(2**63) and json_safe(2**64 - 1) == 2**64 - 1
    assert json_safe(True) is True and json_safe("Infinity") == "Infinity" and json_safe(None) is None
    assert json_safe([math.nan, {"k": -math.inf}, 2**64]) == ["NaN", {"k": "-Infinity"}, str(2**64)]


@pytest.mark.parametrize("forwarding", [{"answer_delay": 0.1}], indirect=True)
def test_a_slow_but_answering_honeycomb_slows_ingest_instead_of_dropping(forwarding):
    client, standin, app = forwarding
    sink = next(s for s in app.extensions["trace_proxy"].sinks if s.name == "honeycomb")
    sink.backlog = 60  # a small backlog, so the requests below outrun the senders
    trace_id = secrets.token_hex(8)
    assert client.post("/api/v2/spans", json=healthy(trace_id, 50)).status_code == 202  # Honeycomb answers once
    counted(client, lambda m: m["forwarded"].get("honeycomb") == 50, "the first batch answered")
    for n in range(1, 8):
        assert client.post("/api/v2/spans", json=healthy(trace_id, 50, first=1 + 50 * n)).status_code == 202
    standin.wait_for(lambda _: standin.stats()["accepted"] >= 400, "every span", timeout=20)
    metrics = counted(client, lambda m: m["forwarded"].get("honeycomb") == 400, "400 forwarded")
    assert metrics["dropped"] == {}


def test_while_ingest_is_held_back_the_live_proxy_still_answers_health_and_queries():
    """Backpressure waits off the server's event loop: a probe or a query is not held up with it."""
    with honeycomb_standin(answer_delay=1.0) as standin:
        env = {"HONEYCOMB_API_KEY": KEY, "HONEYCOMB_API_HOST": standin.url, "HONEYCOMB_DATASET": "faults"}
        with running_proxy("--honeycomb-backlog", "60", env=env) as live:
            trace_id = secrets.token_hex(8)
            post = functools.partial(requests.post, f"{live.url}/api/v2/spans", timeout=30)
            assert post(json=healthy(trace_id, 50)).status_code == 202  # Honeycomb has answered once
            standin.wait_for(lambda _: standin.stats()["accepted"] >= 50, "the first batch")
            # One client posting back to back: each batch waits for the one before it to be
            # answered (~0.5 s); meanwhile this thread probes health and queries.
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                posts = pool.submit(lambda: [post(json=healthy(trace_id, 50, first=1 + 50 * n)).status_code
                                             for n in range(1, 7)])
                probes = []
                while not posts.done():
                    started = time.monotonic()
                    assert requests.get(f"{live.url}/healthz", timeout=5).ok
                    assert "neighbour" in requests.get(f"{live.url}/api/v2/services", timeout=5).json()
                    probes.append(time.monotonic() - started)
                assert posts.result() == [202] * 6
            assert probes and max(probes) < 0.5, f"health and queries waited with ingest: {max(probes):.2f} s"
            # Every span is accounted for: delivered, or (on a very slow machine, after 2 s of
            # waiting) dropped and counted; that none is dropped is the in-process test's job.
            def accounted():
                metrics = requests.get(f"{live.url}/metrics.json", timeout=5).json()
                dropped = sum(metrics["dropped"].get("honeycomb", {}).values())
                return metrics if metrics["forwarded"].get("honeycomb", 0) + dropped == 350 else None
            wait_for(accounted, 30, "every span delivered or counted")
