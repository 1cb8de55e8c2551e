"""The Flask service: the contract of DESIGN.md, through its app factory and under gunicorn."""
from __future__ import annotations

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from meshtools.shared.background import serving
from meshtools.local.mesh import APP_COMMAND
from meshtools.shared.net import free_port
from service import TRACE_HEADERS, create_app


@pytest.fixture
def recorder():
    """A stand-in egress that records the headers and paths of service1's calls."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    import threading

    calls = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            calls.append((self.path, dict(self.headers)))
            body = b'{"upstream": "healthy"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", calls
    finally:
        server.shutdown()
        server.server_close()


def test_service1_echo_calls_five_stages_forwarding_every_trace_header(recorder):
    egress, calls = recorder
    client = create_app({"SERVICE_NAME": "1", "EGRESS_URL": egress, "HOSTNAME": "service1-abc"}).test_client()
    headers = {h: f"value-{h}" for h in TRACE_HEADERS}
    reply = client.get("/echo/friend", headers={**headers, "x-unrelated": "no"})
    assert reply.status_code == 200
    page = reply.get_data(as_text=True)
    assert "Hello friend!" in page and "service 1" in page and "pod: service1-abc" in page
    assert [path for path, _ in calls] == [f"/stage/{i}" for i in range(5)]
    for _, sent in calls:
        sent = {k.lower(): v for k, v in sent.items()}
        assert all(sent[h] == f"value-{h}" for h in TRACE_HEADERS)
        assert "x-unrelated" not in sent


def test_echo_escapes_markup_in_the_name(recorder):
    egress, _ = recorder
    client = create_app({"EGRESS_URL": egress}).test_client()
    page = client.get("/echo/<script>alert(1)</script>").get_data(as_text=True)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_chris_answers_500_and_logs_the_seed_error(recorder, capsys):
    egress, calls = recorder
    reply = create_app({"EGRESS_URL": egress}).test_client().get("/echo/chris")
    assert reply.status_code == 500
    assert '"error": "too many chrises"' in capsys.readouterr().out
    assert calls == []


def test_service2_echo_and_stages_answer_healthy():
    client = create_app({"SERVICE_NAME": "2"}).test_client()
    assert client.get("/echo/friend").get_json() == {"upstream": "healthy"}
    assert client.get("/stage/0").get_json() == {"upstream": "healthy"}
    assert client.get("/healthz").status_code == 200


def test_unreachable_upstream_answers_502_with_a_reason():
    client = create_app({"EGRESS_URL": f"http://127.0.0.1:{free_port()}", "UPSTREAM_TIMEOUT_SECONDS": 2}).test_client()
    reply = client.get("/echo/friend")
    assert reply.status_code == 502
    assert reply.get_json()["reason"].startswith("stage 0: ConnectionError")


def test_upstream_error_answers_502_not_a_traceback():
    app = create_app({"SERVICE_NAME": "1"})
    # service2's own 5xx (as Envoy's 503 when it is down) reaches the user as a clean 502.
    from unittest import mock

    with mock.patch("requests.Session.get", return_value=mock.Mock(status_code=503)):
        reply = app.test_client().get("/echo/friend")
    assert reply.status_code == 502
    assert reply.get_json() == {"error": "upstream answered an error", "reason": "stage 0: 503"}


def test_slow_stage_bounds_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("SLOW_STAGE_MIN_SECONDS", "0.5")
    monkeypatch.setenv("SLOW_STAGE_JITTER_SECONDS", "0")
    app = create_app({"SERVICE_NAME": "2"})
    assert app.config["SLOW_STAGE_MIN_SECONDS"] == 0.5 and app.config["SLOW_STAGE_JITTER_SECONDS"] == 0.0


def test_gunicorn_serves_a_fast_stage_while_slow_ones_are_in_flight():
    """One slow /stage/3 must never hold up the others (service2 under service1's load)."""
    port = free_port()
    env = {**os.environ, "SERVICE_NAME": "2", "BIND": f"127.0.0.1:{port}",
           "SLOW_STAGE_MIN_SECONDS": "2", "SLOW_STAGE_JITTER_SECONDS": "0"}
    base = f"http://127.0.0.1:{port}"
    with serving(APP_COMMAND, f"{base}/healthz", env=env, timeout=20):
        finished = []
        def get(path):
            requests.get(f"{base}{path}", timeout=10).raise_for_status()
            finished.append(path)
        with ThreadPoolExecutor(9) as pool:
            slow = [pool.submit(get, "/stage/3") for _ in range(8)]
            fast = pool.submit(get, "/stage/0")
            fast.result()
            # The fast call came back while all eight slow ones were still sleeping.
            assert finished == ["/stage/0"]
            for future in slow:
                future.result()
        assert len(finished) == 9


def test_each_request_logs_one_json_line_with_its_request_and_trace_id(recorder, capsys):
    # Log lines read `{"service": "1", "pod": …, "path": …, "status": 200}`: nothing to find a trace by.
    egress, _ = recorder
    client = create_app({"SERVICE_NAME": "1", "EGRESS_URL": egress, "HOSTNAME": "service1-abc"}).test_client()
    capsys.readouterr()
    client.get("/echo/friend", headers={"x-request-id": "req-1", "x-b3-traceid": "463ac35c9f6413ad48485a3953bb6124"})
    client.get("/echo/chris", headers={"x-request-id": "req-2", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
    client.get("/healthz")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    served = [line for line in lines if "status" in line]
    assert [(l["path"], l["status"], l["request_id"], l["trace_id"]) for l in served] == [
        ("/echo/friend", 200, "req-1", "463ac35c9f6413ad48485a3953bb6124"),
        ("/echo/chris", 500, "req-2", "0af7651916cd43dd8448eb211c80319c"),
    ]
    error = next(line for line in lines if line.get("error") == "too many chrises")
    assert error["request_id"] == "req-2"
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"]) for line in lines)
    assert served[0]["method"] == "GET" and served[0]["duration_ms"] >= 0
