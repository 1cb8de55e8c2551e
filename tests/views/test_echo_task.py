"""`inv echo` against a fake front (a stdlib HTTP server on a free port): what a user reads."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support.inv_process import run_inv

REQUEST_ID = "5b1d6c7e-0000-4000-8000-0123456789ab"


class FakeFrontHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"Hello {self.path.rsplit('/', 1)[-1]}!".encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.send_header("x-request-id", REQUEST_ID)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_front_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeFrontHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def inv(*args):
    return run_inv(*args, env={"NO_COLOR": "1"}, timeout=60)


def test_echo_prints_the_reply_and_how_to_see_its_trace_fake_front(fake_front_url):
    result = inv("echo", "--name", "friend", "--url", fake_front_url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "Hello friend!",
        f"-- HTTP 200 · x-request-id {REQUEST_ID}",
        f"-- trace: inv traces --id {REQUEST_ID}",
    ]


def test_echo_with_a_url_that_is_not_one_says_what_it_must_look_like():
    result = inv("echo", "--url", "nonsense")
    assert result.returncode == 1
    assert result.stderr.strip() == "--url must be http://host:port (or https://), got 'nonsense'."


def test_echo_error_lines_shorten_a_huge_url_fake_front(fake_front_url):
    # The stdlib server refuses a 70 KB request line with 414, as Envoy refuses it with 431.
    result = inv("echo", "--name", "a" * 70_000, "--url", fake_front_url)
    assert result.returncode == 1
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and len(message) < 200, message[:300]
    assert message.startswith(f"{fake_front_url}/echo/aaa") and message.endswith("answered HTTP 414.")
