"""Requests that once broke the proxy (issue 21, defects 1-8), each sent exactly as found.

Every one must get a 4xx or a working answer, never a 500, and leave the proxy forwarding,
storing and serving pages as before.
"""
from __future__ import annotations

import json
import secrets

import pytest

from tests.support.honeycomb_standin import honeycomb_standin
from tests.support.waiting import wait_for
from trace_proxy import create_app
from trace_proxy.settings import Settings

KEY = "hcaik_standin_" + secrets.token_hex(8)
JSON = {"Content-Type": "application/json"}


def hex16() -> str:
    return secrets.token_hex(8)


@pytest.fixture
def forwarding():
    """An in-process proxy forwarding to a fresh Honeycomb stand-in: (client, standin, app)."""
    with honeycomb_standin() as standin:
        app = create_app(Settings(writekey=KEY, api_host=standin.url, dataset="hardening"))
        try:
            yield app.test_client(), standin, app
        finally:
            app.extensions["trace_proxy"].close()


@pytest.fixture
def client():
    app = create_app(Settings())
    yield app.test_client()
    app.extensions["trace_proxy"].close()


def post(client, body: bytes | str, version: int = 2, headers=JSON):
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    return client.post(f"/api/v{version}/spans", data=body, headers=headers)


def good_span(trace_id: str, span_id: str | None = None, **extra) -> dict:
    return {"traceId": trace_id, "id": span_id or hex16(), "name": "get", "timestamp": 1_700_000_000_000_000,
            "duration": 10, "localEndpoint": {"serviceName": "svc"}, **extra}


# -- 1. a tag nested 1,000 deep must not kill the senders ---------------------------------
def test_a_deeply_nested_tag_is_refused_and_forwarding_goes_on(forwarding):
    client, standin, _ = forwarding
    nested = f'[{{"traceId":"{hex16()}","id":"{hex16()}","timestamp":1,"tags":{{"x":' + "[" * 1000 + "]" * 1000 + "}}]"
    for _ in range(4):
        reply = post(client, nested)
        assert reply.status_code == 400, reply.data
        assert b"tags.x" in reply.data
    trace_id = hex16()
    assert post(client, json.dumps([good_span(trace_id)])).status_code == 202
    standin.wait_for_trace(trace_id, 1)
    assert client.get("/healthz").status_code == 200


def test_a_dead_sender_makes_healthz_unhealthy_and_is_restarted(forwarding, monkeypatch):
    client, standin, app = forwarding
    sink = next(s for s in app.extensions["trace_proxy"].sinks if s.name == "honeycomb")
    real = sink._serialise
    calls = []

    def dies_once(spans):
        if not calls:
            calls.append(1)
            raise SystemExit("a sender thread dies")  # what no `except Exception` catches
        return real(spans)

    monkeypatch.setattr(sink, "_serialise", dies_once)
    lost = hex16()
    assert post(client, json.dumps([good_span(lost)])).status_code == 202
    unhealthy = wait_for(lambda: (r := client.get("/healthz")).status_code == 503 and r, 10, "healthz 503")
    assert "sender" in unhealthy.get_json()["problems"][0]
    wait_for(lambda: client.get("/healthz").status_code == 200, 10, "the sender restarted")
    metrics = client.get("/metrics.json").get_json()
    assert metrics["dropped"]["honeycomb"]["sender_died"] == 1
    assert metrics["restarted"]["honeycomb"] >= 1
    kept = hex16()
    assert post(client, json.dumps([good_span(kept)])).status_code == 202
    standin.wait_for_trace(kept, 1)


def test_a_span_the_sender_cannot_serialise_is_counted_and_neighbours_arrive(forwarding, monkeypatch):
    """Whatever an event's conversion raises, the span is counted and the thread lives on."""
    client, standin, app = forwarding
    from trace_proxy.sinks import honeycomb

    real = honeycomb.to_event

    def refuses_one(span, *args):
        if span.v2.get("name") == "poison":
            raise RecursionError("maximum recursion depth exceeded")
        return real(span, *args)

    monkeypatch.setattr(honeycomb, "to_event", refuses_one)
    trace_id = hex16()
    spans = [good_span(trace_id, name="poison"), good_span(trace_id)]
    assert post(client, json.dumps(spans)).status_code == 202
    standin.wait_for_trace(trace_id, 1)
    metrics = wait_for(lambda: (m := client.get("/metrics.json").get_json())["dropped"].get("honeycomb") and m,
                       10, "the poison span counted")
    assert metrics["dropped"]["honeycomb"] == {"unserializable": 1}
    assert client.get("/healthz").status_code == 200


# -- 3. the store is bounded in bytes ------------------------------------------------------
def test_the_store_is_bounded_in_bytes_not_only_spans():
    settings = Settings(max_store_bytes=8 * 1024 * 1024, settle_seconds=0)
    app = create_app(settings)
    client = app.test_client()
    big = "x" * 1_000_000
    try:
        for _ in range(100):
            trace_id, root = hex16(), hex16()
            spans = [good_span(trace_id, root, tags={"big": big})]
            spans += [good_span(trace_id, parentId=root, tags={"big": big}) for _ in range(3)]
            assert post(client, json.dumps(spans)).status_code == 202
        stats = client.get("/metrics.json").get_json()["store"]
        assert stats["bytes"] <= settings.max_store_bytes
        assert 0 < stats["spans"] <= 8
        assert stats["evicted_spans"] == 400 - stats["spans"]
        reply = client.get("/api/v2/traces?limit=1000&lookback=999999999999&endTs=1800000000000")
        assert reply.status_code == 200
        assert len(reply.data) <= settings.max_store_bytes * 1.1
        assert sum(len(trace) for trace in reply.get_json()) == stats["spans"]
    finally:
        app.extensions["trace_proxy"].close()


def test_a_span_larger_than_the_whole_store_is_refused_not_stored():
    app = create_app(Settings(max_store_bytes=100_000))
    client = app.test_client()
    try:
        reply = post(client, json.dumps([good_span(hex16(), tags={"big": "x" * 200_000})]))
        assert reply.status_code == 202  # forwarded all the same; only the store cannot keep it
        stats = client.get("/metrics.json").get_json()
        assert stats["store"]["spans"] == 0
        assert stats["dropped"]["store"] == {"too_large": 1}
    finally:
        app.extensions["trace_proxy"].close()


# -- 4. a lone surrogate in a name ---------------------------------------------------------
@pytest.mark.parametrize("version", [1, 2])
def test_a_lone_surrogate_in_a_service_name_leaves_every_page_working(client, version):
    trace_id = hex16()
    endpoint = '{"serviceName":"svc\\ud800"}'
    if version == 2:
        body = f'[{{"traceId":"{trace_id}","id":"{hex16()}","name":"op\\udfff","timestamp":1700000000000000,' \
               f'"duration":5,"localEndpoint":{endpoint}}}]'
    else:
        body = f'[{{"traceId":"{trace_id}","id":"{hex16()}","name":"op","timestamp":1700000000000000,' \
               f'"duration":5,"annotations":[{{"timestamp":1700000000000000,"value":"sr","endpoint":{endpoint}}}]}}]'
    assert post(client, body, version).status_code == 202
    for path in ("/", "/?arriving=1&lookback=999999999999", "/heatmap", f"/trace/{trace_id}", "/dependencies",
                 "/api/v2/services", f"/api/v2/trace/{trace_id}"):
        reply = client.get(path)
        assert reply.status_code == 200, (path, reply.data[:300])
    assert client.get("/api/v2/services").get_json() == ["svc\ufffd"]


# -- 5. only span content types; browsers' cross-site posts refused ------------------------
@pytest.mark.parametrize("headers", [{}, {"Content-Type": "text/plain"},
                                     {"Content-Type": "application/x-www-form-urlencoded"},
                                     {"Content-Type": "multipart/form-data; boundary=x"}])
@pytest.mark.parametrize("path", ["/api/v2/spans", "/api/v1/spans", "/v1/traces"])
def test_a_post_without_a_span_content_type_is_refused(client, headers, path):
    """What a page's `fetch(url, {mode: "no-cors", body: blob})` can send without CORS' consent."""
    reply = client.post(path, data=json.dumps([good_span(hex16())]), headers=headers)
    assert reply.status_code == 415
    assert client.get("/metrics.json").get_json()["received"]["spans"] == 0


@pytest.mark.parametrize("headers", [{"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                                     {"Origin": "https://attacker.example"}, {"Origin": "null"}])
@pytest.mark.parametrize("path", ["/api/v2/spans", "/v1/traces"])
def test_a_browsers_cross_site_post_is_refused(client, headers, path):
    reply = client.post(path, data=json.dumps([good_span(hex16())]), headers={**JSON, **headers})
    assert reply.status_code == 403
    assert b"Sec-Fetch-Site" in reply.data or b"Origin" in reply.data
    assert client.get("/metrics.json").get_json()["received"]["spans"] == 0


@pytest.mark.parametrize("headers", [{}, {"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"},
                                     {"Origin": "http://localhost"}, {"User-Agent": "Envoy/1.40"}])
def test_real_clients_and_the_proxys_own_pages_still_post(client, headers):
    reply = client.post("/api/v2/spans", data=json.dumps([good_span(hex16())]), headers={**JSON, **headers})
    assert reply.status_code == 202


@pytest.mark.parametrize("method, path", [("GET", "/"), ("GET", "/api/v2/services"), ("GET", "/healthz"),
                                          ("POST", "/api/v2/spans"), ("GET", "/metrics"), ("GET", "/nowhere")])
def test_every_response_says_nosniff_and_grants_no_cors(client, method, path):
    reply = client.open(path, method=method, data="[]", headers=JSON)
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert "Access-Control-Allow-Origin" not in reply.headers


# -- 6. timestamps at the edge of int64 ----------------------------------------------------
def test_a_span_at_the_end_of_time_has_a_working_page(client):
    trace_id = hex16()
    body = f'[{{"traceId":"{trace_id}","id":"{hex16()}","name":"late","timestamp":9223372036854775807,' \
           f'"duration":5,"localEndpoint":{{"serviceName":"svc"}}}}]'
    assert post(client, body).status_code == 202
    reply = client.get(f"/trace/{trace_id}")
    assert reply.status_code == 200, reply.data[:300]
    assert client.get("/?arriving=1").status_code == 200


def test_a_search_ending_far_in_the_future_answers(client):
    reply = client.get("/?end=999999999999999")
    assert reply.status_code == 200, reply.data[:300]


# -- 7. 500 instead of 400 ----------------------------------------------------------------
@pytest.mark.parametrize("path, body, status", [
    ("/api/v2/spans", b'[{"traceId":"' + b"a" * 16 + b'","id":"' + b"b" * 16 + b'","name":"\xff"}]', 400),
    ("/v1/traces", '{"resourceSpans":"\\ud800"}'.encode(), 400),
    # An unknown field (U+FFFD once read), which OTLP receivers must ignore: nothing to take.
    ("/v1/traces", '{"resourceSpans":[{"\\ud800":1}]}'.encode(), 200),
    ("/api/v1/spans", ('[{"traceId":"' + "a" * 16 + '","id":"' + "b" * 16 + '","binaryAnnotations":[{"key":"k",'
                       '"value":' + "[" * 1000 + "]" * 1000 + '}]}]').encode(), 400),
    ("/api/v2/spans", ('[{"traceId":"' + "a" * 16 + '","id":"' + "b" * 16 + '","tags":{"k":'
                       + "{\"a\":" * 900 + "1" + "}" * 900 + '}}]').encode(), 400),
])
def test_malformed_bodies_get_400_not_500(client, path, body, status):
    reply = client.post(path, data=body, headers=JSON)
    assert reply.status_code == status, reply.data[:300]
    assert client.get("/metrics.json").get_json()["received"]["spans"] == 0
    reply.data.decode("utf-8")  # the reason itself is valid UTF-8
    assert client.get("/healthz").status_code == 200


# -- 8. the search's "Show more" link ------------------------------------------------------
@pytest.mark.parametrize("query", ["limit=1&_method=POST", "limit=1&_external=1", "limit=1&_anchor=x",
                                   "limit=1&_scheme=https"])
def test_show_more_ignores_flasks_own_keywords(client, query):
    trace_id = hex16()
    post(client, json.dumps([good_span(trace_id)]))
    reply = client.get(f"/?{query}&arriving=1&lookback=999999999999")
    assert reply.status_code == 200, reply.data[:300]
    assert b"Show more" in reply.data


def test_the_api_grants_cors_only_to_the_origins_a_flag_names():
    app = create_app(Settings(cors_origins=("https://ui.example",)))
    client = app.test_client()
    try:
        named = {**JSON, "Origin": "https://ui.example", "Sec-Fetch-Site": "cross-site"}
        reply = post(client, json.dumps([good_span(hex16())]), headers=named)
        assert reply.status_code == 202 and reply.headers["Access-Control-Allow-Origin"] == "https://ui.example"
        read = client.get("/api/v2/services", headers={"Origin": "https://ui.example"})
        assert read.headers["Access-Control-Allow-Origin"] == "https://ui.example"
        preflight = client.options("/api/v2/spans", headers={"Origin": "https://ui.example",
                                                             "Access-Control-Request-Method": "POST"})
        assert preflight.status_code == 200 and "POST" in preflight.headers["Access-Control-Allow-Methods"]
        other = {**JSON, "Origin": "https://other.example", "Sec-Fetch-Site": "cross-site"}
        refused = post(client, json.dumps([good_span(hex16())]), headers=other)
        assert refused.status_code == 403 and "Access-Control-Allow-Origin" not in refused.headers
    finally:
        app.extensions["trace_proxy"].close()


def test_cors_origin_flag_is_repeatable():
    from trace_proxy.cli import settings_from_args

    settings = settings_from_args(["--cors-origin", "https://a.example/", "--cors-origin", "http://b.example:8080"])
    assert settings.cors_origins == ("https://a.example", "http://b.example:8080")
