"""Ingest: what the trace proxy accepts, what it refuses (4xx with a reason), and that
nothing a client sends crashes it or loses spans it already accepted."""
from __future__ import annotations

import gzip
import json
import secrets

import pytest
import requests
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.support.trace_proxy_process import running_proxy
from tests.support.trace_proxy_spans import envoy_trace
from trace_proxy import create_app
from trace_proxy.settings import Settings

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def app():
    return create_app(Settings(max_body_bytes=LIMIT))


@pytest.fixture
def client(app):
    return app.test_client()


def gz(data: bytes) -> bytes:
    return gzip.compress(data)


BAD_REQUESTS = [
    # (description, path, body, headers, status, reason fragment)
    ("xml", "/api/v2/spans", b"<spans/>", {"Content-Type": "application/xml"}, 415, "Content-Type"),
    ("protobuf on v1", "/api/v1/spans", b"\x0a\x00", {"Content-Type": "application/x-protobuf"}, 415, "Content-Type"),
    ("brotli", "/api/v2/spans", b"[]", {"Content-Type": "application/json", "Content-Encoding": "br"}, 415, "Content-Encoding"),
    ("not json", "/api/v2/spans", b"[{", {"Content-Type": "application/json"}, 400, "not valid JSON"),
    ("NaN", "/api/v2/spans", b'[{"traceId": "1", "id": "1", "tags": {"x": NaN}}]', {"Content-Type": "application/json"},
     400, "not valid JSON"),
    ("not utf-8", "/api/v2/spans", b"\xff\xfe", {"Content-Type": "application/json"}, 400, "not valid JSON"),
    ("object", "/api/v2/spans", b'{"traceId": "1"}', {"Content-Type": "application/json"}, 400, "JSON list"),
    ("span not object", "/api/v2/spans", b"[1]", {"Content-Type": "application/json"}, 400, "span 0"),
    ("no traceId", "/api/v2/spans", b'[{"id": "1"}]', {"Content-Type": "application/json"}, 400, "traceId"),
    ("no id", "/api/v1/spans", b'[{"traceId": "1"}]', {"Content-Type": "application/json"}, 400, "no id"),
    ("numeric id", "/api/v2/spans", b'[{"traceId": "1", "id": 2}]', {"Content-Type": "application/json"}, 400, "id"),
    ("bad hex", "/api/v2/spans", b'[{"traceId": "xyz", "id": "1"}]', {"Content-Type": "application/json"}, 400, "hex"),
    ("string duration", "/api/v2/spans", b'[{"traceId": "1", "id": "1", "duration": "5"}]',
     {"Content-Type": "application/json"}, 400, "duration"),
    ("tags list", "/api/v2/spans", b'[{"traceId": "1", "id": "1", "tags": []}]', {"Content-Type": "application/json"}, 400, "tags"),
    ("bad port", "/api/v2/spans", b'[{"traceId": "1", "id": "1", "localEndpoint": {"port": 70000}}]',
     {"Content-Type": "application/json"}, 400, "port"),
    ("not gzip", "/api/v2/spans", b"[]", {"Content-Type": "application/json", "Content-Encoding": "gzip"}, 400, "gzip"),
    ("truncated gzip", "/api/v2/spans", gz(b"[]" * 100)[:-12], {"Content-Type": "application/json", "Content-Encoding": "gzip"},
     400, "gzip"),
    ("oversized", "/api/v2/spans", b"[" + b" " * LIMIT + b"]", {"Content-Type": "application/json"}, 413, "larger"),
    ("gzip bomb", "/api/v2/spans", gz(b"[" + b" " * (LIMIT * 100) + b"]"),
     {"Content-Type": "application/json", "Content-Encoding": "gzip"}, 413, "decompressed"),
]


@pytest.mark.parametrize("path,body,headers,status,reason", [c[1:] for c in BAD_REQUESTS], ids=[c[0] for c in BAD_REQUESTS])
def test_bad_bodies_get_4xx_with_a_reason(client, path, body, headers, status, reason):
    reply = client.post(path, data=body, headers=headers)
    assert reply.status_code == status
    assert reason in reply.get_data(as_text=True)


def test_rejections_are_counted(app):
    client = app.test_client()
    before = client.get("/metrics.json").get_json()["rejected"]["requests"]
    client.post("/api/v2/spans", data=b"nope", headers={"Content-Type": "application/json"})
    assert client.get("/metrics.json").get_json()["rejected"]["requests"] == before + 1


def test_gzip_and_plain_v2_bodies_are_stored_alike(client):
    plain, zipped = envoy_trace(), envoy_trace()
    assert client.post("/api/v2/spans", json=plain).status_code == 202
    reply = client.post("/api/v2/spans", data=gz(json.dumps(zipped).encode()),
                        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert reply.status_code == 202
    for spans in (plain, zipped):
        stored = client.get(f"/api/v2/trace/{spans[0]['traceId']}").get_json()
        assert stored == spans


def test_v1_spans_become_queryable_v2_spans(client):
    trace_id = secrets.token_hex(8)
    client_ep = {"ipv4": "10.0.0.1", "port": 80, "serviceName": "front-envoy"}
    v1 = [{"traceId": trace_id, "id": "0000000000000001", "name": "get /echo", "timestamp": 1_700_000_000_000_000,
           "duration": 1500,
           "annotations": [{"timestamp": 1_700_000_000_000_000, "value": "cs", "endpoint": client_ep},
                           {"timestamp": 1_700_000_000_001_500, "value": "cr", "endpoint": client_ep},
                           {"timestamp": 1_700_000_000_000_700, "value": "retry", "endpoint": client_ep}],
           "binaryAnnotations": [{"key": "http.status_code", "value": "200", "endpoint": client_ep},
                                 {"key": "sa", "value": True, "endpoint": {"serviceName": "service1", "port": 80}}]}]
    assert client.post("/api/v1/spans", json=v1).status_code == 202
    [span] = client.get(f"/api/v2/trace/{trace_id}").get_json()
    assert span == {"traceId": trace_id, "id": "0000000000000001", "name": "get /echo", "kind": "CLIENT",
                    "timestamp": 1_700_000_000_000_000, "duration": 1500, "localEndpoint": client_ep,
                    "remoteEndpoint": {"serviceName": "service1", "port": 80},
                    "annotations": [{"timestamp": 1_700_000_000_000_700, "value": "retry"}],
                    "tags": {"http.status_code": "200"}}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
span_like = st.fixed_dictionaries(
    {"traceId": st.one_of(st.text(max_size=40), st.from_regex(r"\A[0-9a-fA-F]{1,32}\Z"), json_values),
     "id": st.one_of(st.from_regex(r"\A[0-9a-f]{1,16}\Z"), json_values)},
    optional={k: json_values for k in ("parentId", "name", "kind", "timestamp", "duration", "localEndpoint",
                                       "remoteEndpoint", "tags", "annotations", "binaryAnnotations", "debug")},
)
endpoint = st.fixed_dictionaries({}, optional={"serviceName": st.text(max_size=10), "ipv4": st.text(max_size=15),
                                             "port": st.integers(0, 65535)})
valid_span = st.fixed_dictionaries(
    {"traceId": st.from_regex(r"\A[0-9a-fA-F]{1,32}\Z"), "id": st.from_regex(r"\A[0-9a-f]{1,16}\Z")},
    optional={"parentId": st.from_regex(r"\A[0-9a-f]{16}\Z"), "name": st.text(max_size=20),
              "kind": st.sampled_from(["CLIENT", "SERVER"]), "timestamp": st.integers(0, 2**63 - 1),
              "duration": st.integers(0, 2**40), "localEndpoint": endpoint, "remoteEndpoint": endpoint,
              "tags": st.dictionaries(st.text(max_size=10), json_values, max_size=4),
              "binaryAnnotations": st.lists(st.fixed_dictionaries(
                  {"key": st.text(max_size=8), "value": json_values}, optional={"endpoint": endpoint}), max_size=3),
              "annotations": st.lists(st.fixed_dictionaries(
                  {"timestamp": st.integers(0, 2**53), "value": st.sampled_from(["cs", "cr", "sr", "ss", "x"])},
                  optional={"endpoint": endpoint}), max_size=3)},
)
bodies = st.one_of(json_values, st.lists(st.one_of(valid_span, span_like, json_values), max_size=5),
                   st.lists(valid_span, min_size=1, max_size=5))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, version=st.sampled_from([1, 2]))
def test_arbitrary_json_gets_202_or_400_and_never_breaks_the_store(app, body, version):
    client = app.test_client()
    reply = client.post(f"/api/v{version}/spans", data=json.dumps(body), headers={"Content-Type": "application/json"})
    assert reply.status_code in (202, 400), reply.get_data(as_text=True)
    if reply.status_code == 400:
        assert reply.get_data(as_text=True).strip()
    else:  # every accepted span can be read back by its trace id, in any letter case
        for span in body:
            stored = client.get(f"/api/v2/trace/{span['traceId'].upper()}")
            assert stored.status_code == 200
    for path in ("/api/v2/services", "/api/v2/traces?limit=3", "/healthz"):
        assert client.get(path).status_code == 200


@pytest.fixture(scope="module")
def live():
    with running_proxy("--max-body-bytes", str(LIMIT)) as running:
        yield running


def test_live_proxy_refuses_abuse_and_keeps_serving_what_it_accepted(live):
    kept = envoy_trace()
    assert requests.post(f"{live.url}/api/v2/spans", json=kept, timeout=5).status_code == 202
    for _, path, body, headers, status, _ in BAD_REQUESTS:
        reply = requests.post(f"{live.url}{path}", data=body, headers=headers, timeout=10)
        assert reply.status_code == status, (path, headers, reply.text)

    def chunks():  # an endless chunked body must be cut off, not buffered
        while True:
            yield b" " * 8192

    reply = requests.post(f"{live.url}/api/v2/spans", data=chunks(), headers={"Content-Type": "application/json"},
                          timeout=10)
    assert reply.status_code == 413
    assert requests.get(f"{live.url}/healthz", timeout=5).ok
    stored = requests.get(f"{live.url}/api/v2/trace/{kept[0]['traceId']}", timeout=5).json()
    assert len(stored) == len(kept)
    assert live.process.poll() is None

