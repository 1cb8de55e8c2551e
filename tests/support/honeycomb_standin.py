"""A local stand-in for Honeycomb's batch API: a real HTTP server on loopback.

It answers `POST /1/batch/<dataset>` (and counts OTLP/HTTP protobuf at `POST /v1/traces`,
Honeycomb's other endpoint, which the OpenTelemetry Collector posts to) the way Honeycomb does: a body that is not strict JSON
(Python's `NaN`/`Infinity` included) or not a list is refused whole with 400; otherwise
every event gets its own status, 400 for an event Honeycomb would refuse (its `data` not an
object, more columns than `max_columns`, larger than `max_event_bytes`), 202 for the rest.
It records every request's path, headers and (decompressed) JSON body for the tests to
inspect, or with `keep_events=False` only counts them (the benchmark's long runs).

`python -m tests.support.honeycomb_standin PORT` serves one on its own (the benchmark runs
it in a process of its own; the cluster tests in a pod, with `--host 0.0.0.0 --keep-events`);
`GET /stats` answers its counts, `GET /traces/ID` (with --keep-events) how many events of that
trace it kept and under which keys (the X-Honeycomb-Team headers) they came.
"""
from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import socket
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import orjson
import zstandard

try:
    from tests.support.speed import scaled
except ImportError:  # run as a file on its own (in the cluster tests' pod): no deadline of its own to scale
    def scaled(seconds: float) -> float:
        return seconds

MALFORMED = "Request body is malformed and cannot be read"
TOO_MANY_COLUMNS = "Event has too many columns"
TOO_LARGE = "Event exceeds max event size"


@dataclass
class BatchRequest:
    path: str
    headers: dict[str, str]
    raw: bytes
    events: list[dict[str, Any]]
    statuses: list[int] | None = None  # per event, as answered (None: refused whole)

    @property
    def dataset(self) -> str:
        return self.path.removeprefix("/1/batch/")


def event_status(event: Any, max_columns: int, max_event_bytes: int | None) -> dict[str, Any]:
    """Honeycomb's answer for one event of a batch."""
    data = event.get("data") if isinstance(event, dict) else None
    if not isinstance(data, dict):
        return {"status": 400, "error": MALFORMED}
    if len(data) > max_columns:
        return {"status": 400, "error": TOO_MANY_COLUMNS}
    if max_event_bytes is not None and len(json.dumps(data)) > max_event_bytes:
        return {"status": 400, "error": TOO_LARGE}
    return {"status": 202}


class HoneycombStandin:
    def __init__(self, server: ThreadingHTTPServer, *, keep_events: bool = True, max_columns: int = 2000,
                 max_event_bytes: int = 1_000_000, answer_delay: float = 0.0):
        self._server = server
        self.answer_delay = answer_delay  # seconds before each batch is answered: a slow Honeycomb
        self.outage: int | None = None  # a status (503, 429) answered to every batch meanwhile: an outage
        self.keep_events = keep_events
        self.max_columns = max_columns
        self.max_event_bytes = max_event_bytes
        self.requests: list[BatchRequest] = []
        self.refused: list[BatchRequest] = []  # batches answered 400 whole (invalid JSON)
        self.counts = {"batches": 0, "events": 0, "accepted": 0, "rejected": 0, "refused_batches": 0,
                       "outage_answers": 0}
        self._cond = threading.Condition()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def record(self, req: BatchRequest) -> None:
        with self._cond:
            statuses = req.statuses or []
            if req.statuses is None and req.path.startswith("/1/batch/"):
                self.counts["refused_batches"] += 1
                self.refused.append(req)
            else:
                self.counts["batches"] += 1
                self.counts["events"] += len(statuses)
                self.counts["accepted"] += sum(1 for s in statuses if s == 202)
                self.counts["rejected"] += sum(1 for s in statuses if s != 202)
                if self.keep_events:
                    self.requests.append(req)
            self._cond.notify_all()

    def stats(self) -> dict[str, int]:
        with self._cond:
            return dict(self.counts)

    def events(self, dataset: str | None = None) -> list[dict[str, Any]]:
        """Events Honeycomb would have kept (answered 202)."""
        with self._cond:
            return [ev for r in self.requests if dataset in (None, r.dataset)
                    for ev, status in zip(r.events, r.statuses or ()) if status == 202]

    def wait_for(self, predicate, what: str, timeout: float = 10.0):
        """Wait until `predicate(requests)` is truthy and return its value (the deadline scaled
        for a busy machine, tests/support/speed.py)."""
        timeout = round(scaled(timeout), 1)
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (result := predicate(list(self.requests))):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"stand-in did not get {what} within {timeout}s; it got {self.counts}: "
                                         f"{[e['data'] for r in self.requests for e in r.events][:5]} …")
                self._cond.wait(left)
        return result

    def trace_summary(self, trace_id: str) -> dict[str, Any]:
        """How many distinct spans of the trace arrived (a retried batch may bring one twice), and
        under which keys."""
        with self._cond:
            hits = [(r, {e["data"].get("id") for e in r.events
                         if isinstance(e.get("data"), dict) and e["data"].get("traceId") == trace_id})
                    for r in self.requests]
            return {"events": len(set().union(*(ids for _, ids in hits))),
                    "keys": sorted({r.headers.get("X-Honeycomb-Team", "") for r, ids in hits if ids})}

    def wait_for_trace(self, trace_id: str, count: int, timeout: float = 10.0) -> list[BatchRequest]:
        """The batch requests carrying `trace_id`, once `count` of its events arrived."""
        def done(requests):
            hits = [r for r in requests if any(e["data"].get("traceId") == trace_id for e in r.events)]
            n = sum(1 for r in hits for e in r.events if e["data"].get("traceId") == trace_id)
            return hits if n >= count else None
        return self.wait_for(done, f"{count} events of trace {trace_id}", timeout)


def _decompress(raw: bytes, encoding: str) -> bytes:
    """The encodings Honeycomb's API takes: gzip, zstd or none."""
    if encoding == "gzip":
        return gzip.decompress(raw)
    if encoding == "zstd":
        return zstandard.ZstdDecompressor().decompress(raw, max_output_size=64 * 1024 * 1024)
    return raw


def _handler(standin_ref: list[HoneycombStandin]):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as Honeycomb's API

        def _reply(self, status: int, body: bytes = b"", ctype: str = "application/json") -> None:
            self.send_response(status)
            if body:
                self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):  # noqa: N802 (http.server's naming)
            if self.path == "/stats":
                self._reply(200, json.dumps(standin_ref[0].stats()).encode())
            elif self.path.startswith("/traces/"):
                summary = standin_ref[0].trace_summary(self.path.removeprefix("/traces/"))
                self._reply(200, json.dumps(summary).encode())
            else:
                self._reply(404)

        def do_POST(self):  # noqa: N802
            standin = standin_ref[0]
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if standin.outage is not None and self.path.startswith("/1/batch/"):
                with standin._cond:
                    standin.counts["outage_answers"] += 1
                self._reply(standin.outage, json.dumps({"error": "outage"}).encode())
                return
            if self.path == "/v1/traces" and self.headers.get("Content-Type") == "application/x-protobuf":
                self._otlp(standin, raw)
                return
            if not self.path.startswith("/1/batch/"):
                # Anything else is recorded as-is: the stand-in doubles as a downstream collector.
                standin.record(BatchRequest(self.path, dict(self.headers.items()), raw, [], []))
                self._reply(202)
                return
            try:
                body = _decompress(raw, self.headers.get("Content-Encoding", ""))
                # orjson refuses what Honeycomb's Go decoder refuses (NaN, Infinity, 1e999), and is
                # fast enough for the benchmark's tens of thousands of events per second.
                events = orjson.loads(body)
                if not isinstance(events, list):
                    raise ValueError("not a list")
            except (ValueError, OSError, EOFError, zstandard.ZstdError):  # orjson's error is a ValueError
                standin.record(BatchRequest(self.path, dict(self.headers.items()), raw, [], None))
                self._reply(400, json.dumps({"error": MALFORMED}).encode())
                return
            # No event can be larger than the whole body: skip measuring each one when the body is
            # small enough (the benchmark's stand-in must keep up with tens of thousands of events/s).
            limit = standin.max_event_bytes if len(body) > standin.max_event_bytes else None
            answers = [event_status(ev, standin.max_columns, limit) for ev in events]
            statuses = [a["status"] for a in answers]
            if standin.answer_delay:
                time.sleep(standin.answer_delay)
            standin.record(BatchRequest(self.path, dict(self.headers.items()), raw, events, statuses))
            self._reply(200, json.dumps(answers).encode())

        def _otlp(self, standin: HoneycombStandin, raw: bytes) -> None:
            """Honeycomb's OTLP/HTTP endpoint (what the OpenTelemetry Collector's otlphttp exporter
            posts to): every span counts as one accepted event, its span events and links as
            the events Honeycomb makes of them."""
            # Imported here: the cluster tests' pod runs this file without OpenTelemetry's protos.
            from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

            try:
                request = ExportTraceServiceRequest.FromString(
                    _decompress(raw, self.headers.get("Content-Encoding", "")))
            except Exception:  # protobuf's DecodeError, a bad gzip/zstd stream
                standin.record(BatchRequest(self.path, dict(self.headers.items()), raw, [], None))
                self._reply(400, b"", "application/x-protobuf")
                return
            spans = [s for r in request.resource_spans for ss in r.scope_spans for s in ss.spans]
            count = len(spans) + sum(len(s.events) + len(s.links) for s in spans)
            standin.record(BatchRequest(self.path, dict(self.headers.items()), raw, [], [202] * count))
            self._reply(200, b"", "application/x-protobuf")  # an empty ExportTraceServiceResponse: all kept

        def log_message(self, *args):
            pass

    return Handler


@contextlib.contextmanager
def honeycomb_standin(port: int = 0, host: str = "127.0.0.1", **options) -> Iterator[HoneycombStandin]:
    ref: list[HoneycombStandin] = []
    server = ThreadingHTTPServer((host, port), _handler(ref))
    server.daemon_threads = True
    ref.append(HoneycombStandin(server, **options))
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


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.honeycomb_standin",
                                     description="A stand-in for Honeycomb's batch API.")
    parser.add_argument("port", type=int)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--keep-events", action="store_true", help="keep events for GET /traces/ID")
    args = parser.parse_args(argv)
    with honeycomb_standin(args.port, args.host, keep_events=args.keep_events):
        threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
