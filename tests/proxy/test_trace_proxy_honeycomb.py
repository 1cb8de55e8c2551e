"""The trace proxy forwards spans to Honeycomb's batch API, in the upstream proxy's event shape.

A stand-in for Honeycomb's batch API on loopback records what arrives.
"""
from __future__ import annotations

import gzip
import json
import secrets
import time
from pathlib import Path

import pytest
import requests

from meshtools.shared.net import free_port
from tests.support.honeycomb_standin import black_hole, honeycomb_standin
from tests.support.trace_proxy_process import running_proxy
from trace_proxy import create_app
from trace_proxy.settings import Settings

KEY = "hcaik_standin_" + secrets.token_hex(8)
DATASET = "test-dataset"


def v1_payload(trace_id: str) -> list[dict]:
    endpoint = {"ipv4": "10.129.211.111", "serviceName": "poodle"}
    return [{"traceId": trace_id, "name": "persist", "id": "34472e70cb669b31", "parentId": "",
             "binaryAnnotations": [
                 {"key": "lc", "value": "poodle", "endpoint": endpoint},
                 {"key": "responseLength", "value": "136", "endpoint": endpoint},
                 {"key": "cache.hit", "value": "true", "endpoint": endpoint},
                 {"key": "ratio", "value": "0.25", "endpoint": endpoint},
                 {"key": "sa", "value": True, "endpoint": {"ipv4": "10.0.0.9", "serviceName": "db"}},
                 {"key": "keyToDrop", "value": "secret", "endpoint": endpoint}],
             "timestamp": 1506629747288651, "duration": 192}]


def v1_expected(trace_id: str) -> dict:
    return {"time": "2017-09-28T20:15:47.288651Z", "samplerate": 1, "data": {
        "traceId": trace_id, "name": "persist", "id": "34472e70cb669b31", "serviceName": "poodle",
        "hostIPv4": "10.129.211.111", "durationMs": 0.192,
        "lc": "poodle", "responseLength": 136, "cache.hit": True, "ratio": 0.25,
        "trace.trace_id": trace_id, "trace.span_id": "34472e70cb669b31", "service.name": "poodle",
        "duration_ms": 0.192}}


def v2_payload(trace_id: str) -> list[dict]:
    return [{"traceId": trace_id, "name": "persist", "id": "34472e70cb669b31", "parentId": "aa472e70cb669b31",
             "kind": "SERVER", "localEndpoint": {"serviceName": "poodle", "ipv4": "10.129.211.111", "port": 8080},
             "tags": {"lc": "poodle", "responseLength": 136, "http.status_code": "200", "keyToDrop": "secret"},
             "timestamp": 1506629747288651, "duration": 192}]


def v2_expected(trace_id: str) -> dict:
    return {"time": "2017-09-28T20:15:47.288651Z", "samplerate": 1, "data": {
        "traceId": trace_id, "name": "persist", "id": "34472e70cb669b31", "parentId": "aa472e70cb669b31",
        "serviceName": "poodle", "hostIPv4": "10.129.211.111", "port": 8080, "durationMs": 0.192,
        "lc": "poodle", "responseLength": 136, "http.status_code": "200", "kind": "SERVER",
        "trace.trace_id": trace_id, "trace.span_id": "34472e70cb669b31", "trace.parent_id": "aa472e70cb669b31",
        "service.name": "poodle", "duration_ms": 0.192}}


@pytest.fixture(scope="module")
def standin():
    with honeycomb_standin() as server:
        yield server


@pytest.fixture(scope="module")
def proxy(standin):
    env = {"HONEYCOMB_API_KEY": KEY, "HONEYCOMB_API_HOST": standin.url, "HONEYCOMB_DATASET": DATASET}
    with running_proxy("--drop-field", "keyToDrop", env=env) as running:
        yield running


def post(url: str, version: int, spans: list[dict], *, gzipped: bool) -> requests.Response:
    body = json.dumps(spans).encode()
    headers = {"Content-Type": "application/json"}
    if gzipped:
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    return requests.post(f"{url}/api/v{version}/spans", data=body, headers=headers, timeout=5)


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("version,payload,expected", [(1, v1_payload, v1_expected), (2, v2_payload, v2_expected)],
                         ids=["v1", "v2"])
def test_honeycomb_receives_exactly_the_upstream_event(standin, proxy, version, payload, expected, gzipped):
    trace_id = secrets.token_hex(8)
    assert post(proxy.url, version, payload(trace_id), gzipped=gzipped).status_code == 202
    batches = standin.wait_for_trace(trace_id, 1)
    events = [e for b in batches for e in b.events if e["data"]["traceId"] == trace_id]
    assert events == [expected(trace_id)]
    assert {b.dataset for b in batches} == {DATASET}


def test_key_travels_only_in_the_team_header(standin, proxy):
    trace_id = secrets.token_hex(8)
    post(proxy.url, 2, v2_payload(trace_id), gzipped=False)
    standin.wait_for_trace(trace_id, 1)
    assert standin.requests
    for req in standin.requests:
        assert req.headers["X-Honeycomb-Team"] == KEY
        others = {k: v for k, v in req.headers.items() if k != "X-Honeycomb-Team"}
        assert KEY not in json.dumps(others) and KEY not in req.path
        assert KEY.encode() not in req.raw and KEY not in json.dumps(req.events)
    assert KEY not in Path(f"/proc/{proxy.process.pid}/cmdline").read_text()
    assert KEY not in proxy.output()
    assert KEY not in requests.get(f"{proxy.url}/metrics", timeout=5).text


def test_dataset_and_samplerate_tags_steer_the_event(standin, proxy):
    trace_id = secrets.token_hex(8)
    spans = v1_payload(trace_id)
    endpoint = {"ipv4": "10.129.211.121", "serviceName": "shepherd"}
    spans[0]["binaryAnnotations"] += [{"key": "honeycomb.dataset", "value": "write-traces", "endpoint": endpoint},
                                      {"key": "honeycomb.samplerate", "value": "22", "endpoint": endpoint}]
    bad_rate = json.loads(json.dumps(spans))
    bad_rate[0]["id"] = "0000000000000bad"
    bad_rate[0]["binaryAnnotations"][-1]["value"] = "-22"
    assert post(proxy.url, 1, spans + bad_rate, gzipped=False).status_code == 202
    batches = standin.wait_for_trace(trace_id, 2)
    assert {b.dataset for b in batches} == {"write-traces"}
    events = {e["data"]["id"]: e for b in batches for e in b.events}
    assert events["34472e70cb669b31"]["samplerate"] == 22
    assert events["0000000000000bad"]["samplerate"] == 1
    for event in events.values():
        # routed by the endpoint of the last annotation, as upstream; steering tags are not fields
        assert event["data"]["serviceName"] == "shepherd"
        assert not {"honeycomb.dataset", "honeycomb.samplerate", "keyToDrop"} & set(event["data"])


def test_sample_rate_keeps_whole_traces_and_records_the_rate(standin):
    app = create_app(Settings(writekey=KEY, api_host=standin.url, dataset="sampled", sample_rate=10))
    client = app.test_client()
    for trace in range(1, 31):  # Zipkin refuses the all-zero trace id
        spans = [{"traceId": f"{trace:016x}", "id": f"{span + 1:016x}", "name": "s", "timestamp": 1_700_000_000_000_000,
                  "duration": 5} for span in range(10)]
        assert client.post("/api/v2/spans", json=spans).status_code == 202
    try:
        standin.wait_for(lambda reqs: sum(len(r.events) for r in reqs if r.dataset == "sampled") >= 30, "30 events")
        time.sleep(0.5)  # a few more batches would show wrong sampling; the sink sends every 0.25 s
        events = standin.events("sampled")
        assert sorted({e["data"]["traceId"] for e in events}) == [f"{t:016x}" for t in (10, 20, 30)]
        assert len(events) == 30 and {e["samplerate"] for e in events} == {10}
        dropped = client.get("/metrics.json").get_json()["dropped"]["honeycomb"]
        assert dropped == {"sampled": 270}
    finally:
        app.extensions["trace_proxy"].close()


def test_key_can_come_from_a_file(standin, tmp_path):
    key_file = tmp_path / "writekey"
    key_file.write_text(KEY + "\n")
    env = {"HONEYCOMB_API_HOST": standin.url, "HONEYCOMB_DATASET": "from-file"}
    with running_proxy("--writekey-file", str(key_file), env=env) as running:
        trace_id = secrets.token_hex(8)
        assert post(running.url, 2, v2_payload(trace_id), gzipped=True).status_code == 202
        batches = standin.wait_for_trace(trace_id, 1)
    assert [b.headers["X-Honeycomb-Team"] for b in batches] == [KEY]


def _flood(client, rounds: int, per_round: int) -> float:
    slowest = 0.0
    for i in range(rounds):
        spans = [{"traceId": secrets.token_hex(16), "id": f"{j + 1:016x}", "name": "flood"} for j in range(per_round)]
        start = time.monotonic()
        assert client.post("/api/v2/spans", json=spans).status_code == 202
        slowest = max(slowest, time.monotonic() - start)
    return slowest


def test_unresponsive_honeycomb_never_slows_ingest_and_memory_stays_bounded():
    with black_hole() as url:
        app = create_app(Settings(writekey=KEY, api_host=url, honeycomb_backlog=200, spool_bytes=20_000))
        sink = next(s for s in app.extensions["trace_proxy"].sinks if s.name == "honeycomb")
        client = app.test_client()
        slowest = _flood(client, rounds=40, per_round=100)
        metrics = client.get("/metrics.json").get_json()
        assert slowest < 1.0
        assert metrics["spools"]["honeycomb"]["bytes"] <= 20_000
        dropped = metrics["dropped"]["honeycomb"]
        assert set(dropped) <= {"backlog_full", "spool_full"} and sum(dropped.values()) >= 4000 - 200 - 2000
        # every span is somewhere: waiting, spooled or counted as dropped
        assert sum(dropped.values()) + metrics["queues"]["honeycomb"] == 4000
        assert metrics["received"]["spans"] == 4000 and metrics["store"]["spans"] == 4000
    # black hole gone: the stuck connections reset; closing counts what is left (no spool directory)
    app.extensions["trace_proxy"].close()
    metrics = client.get("/metrics.json").get_json()
    assert sum(metrics["dropped"]["honeycomb"].values()) == 4000


def test_unreachable_honeycomb_live_process_keeps_the_spans_and_retries():
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = {"HONEYCOMB_API_KEY": KEY, "HONEYCOMB_API_HOST": closed}
    with running_proxy(env=env) as running:
        for _ in range(10):
            assert post(running.url, 2, v2_payload(secrets.token_hex(8)) * 20, gzipped=False).status_code == 202
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            metrics = requests.get(f"{running.url}/metrics.json", timeout=5).json()
            if metrics["spools"]["honeycomb"]["spans"] == 200 and metrics.get("retried", {}).get("honeycomb"):
                break
            time.sleep(0.1)
        assert metrics["spools"]["honeycomb"]["spans"] == 200 and metrics["queues"]["honeycomb"] == 200
        assert metrics["dropped"] == {} and metrics.get("forwarded", {}).get("honeycomb", 0) == 0
        assert "spans kept in the spool" in running.output()


def test_a_thrift_span_makes_the_same_event_as_its_v1_json(standin, proxy):
    from tests.support.zipkin_thrift_writer import ipv4, signed64, thrift_body, zipkin_core as zc

    trace_id = secrets.token_hex(8)
    ep = zc.Endpoint(ipv4=ipv4("10.129.211.111"), service_name="poodle")
    annotations = [zc.BinaryAnnotation(key=k, value=v.encode(), annotation_type=6, host=ep)
                   for k, v in (("lc", "poodle"), ("responseLength", "136"), ("cache.hit", "true"), ("ratio", "0.25"),
                                ("keyToDrop", "secret"))]
    annotations.append(zc.BinaryAnnotation(key="sa", value=b"\x01", annotation_type=0,
                                           host=zc.Endpoint(ipv4=ipv4("10.0.0.9"), service_name="db")))
    span = zc.Span(trace_id=signed64(trace_id), name="persist", id=signed64("34472e70cb669b31"),
                   timestamp=1506629747288651, duration=192, binary_annotations=annotations)
    reply = requests.post(f"{proxy.url}/api/v1/spans", data=thrift_body([span]),
                          headers={"Content-Type": "application/x-thrift"}, timeout=5)
    assert reply.status_code == 202
    batches = standin.wait_for_trace(trace_id, 1)
    assert [e for b in batches for e in b.events if e["data"]["traceId"] == trace_id] == [v1_expected(trace_id)]
