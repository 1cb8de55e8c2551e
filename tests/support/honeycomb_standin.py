"""A local stand-in for Honeycomb's batch API: a real HTTP server on loopback.

It answers `POST /1/batch/<dataset>` the way Honeycomb does (one status per event) and records
every request's path, headers and (gunzipped) JSON body for the tests to inspect.
"""
from __future__ import annotations

import contextlib
import gzip
import json
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator


@dataclass
class BatchRequest:
    path: str
    headers: dict[str, str]
    raw: bytes
    events: list[dict[str, Any]]

    @property
    def dataset(self) -> str:
        return self.path.removeprefix("/1/batch/")


class HoneycombStandin:
    def __init__(self, server: ThreadingHTTPServer):
        self._server = server
        self.requests: list[BatchRequest] = []
        self._cond = threading.Condition()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def record(self, req: BatchRequest) -> None:
        with self._cond:
            self.requests.append(req)
            self._cond.notify_all()

    def events(self, dataset: str | None = None) -> list[dict[str, Any]]:
        with self._cond:
            return [ev for r in self.requests if dataset in (None, r.dataset) for ev in r.events]

    def wait_for(self, predicate, what: str, timeout: float = 10.0):
        """Wait until `predicate(requests)` is truthy and return its value."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (result := predicate(list(self.requests))):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"stand-in did not get {what} within {timeout}s; it got {self.requests}")
                self._cond.wait(left)
        return result

    def wait_for_trace(self, trace_id: str, count: int, timeout: float = 10.0) -> list[BatchRequest]:
        """The batch requests carrying `trace_id`, once `count` of its events arrived."""
        def done(requests):
            hits = [r for r in requests if any(e["data"].get("traceId") == trace_id for e in r.events)]
            n = sum(1 for r in hits for e in r.events if e["data"].get("traceId") == trace_id)
            return hits if n >= count else None
        return self.wait_for(done, f"{count} events of trace {trace_id}", timeout)


def _handler(standin_ref: list[HoneycombStandin]):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = gzip.decompress(raw) if self.headers.get("Content-Encoding") == "gzip" else raw
            if not self.path.startswith("/1/batch/"):
                # Anything else is recorded as-is: the stand-in doubles as a downstream collector.
                standin_ref[0].record(BatchRequest(self.path, dict(self.headers.items()), raw, []))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            events = json.loads(body)
            standin_ref[0].record(BatchRequest(self.path, dict(self.headers.items()), raw, events))
            reply = json.dumps([{"status": 202}] * len(events)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):
            pass

    return Handler


@contextlib.contextmanager
def honeycomb_standin() -> Iterator[HoneycombStandin]:
    ref: list[HoneycombStandin] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(ref))
    server.daemon_threads = True
    ref.append(HoneycombStandin(server))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ref[0]
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def black_hole() -> Iterator[str]:
    """A port that accepts TCP connections but never answers: the worst kind of outage.

    Closing the listener at the end resets the waiting connections, so senders stuck on it
    fail at once instead of holding the test run until their timeouts.
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()
