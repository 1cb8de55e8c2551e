"""`--downstream URL`: mirror each request body, unchanged, to another Zipkin collector.

Bodies go out at the same /api/vN/spans path they came in on, with their Content-Type and
Content-Encoding (OTLP bodies as the Zipkin v2 JSON of their spans), from one background thread; a full queue drops (and counts) new bodies.
"""
from __future__ import annotations

import json
import logging
import queue
import threading

import requests

from trace_proxy.metrics import Metrics
from trace_proxy.sinks import Batch, ThrottledWarning

log = logging.getLogger("trace_proxy.downstream")


class DownstreamSink:
    name = "downstream"

    def __init__(self, base_url: str, metrics: Metrics, *, queue_size: int = 1000, timeout: float = 5.0):
        self.base_url = base_url.rstrip("/")
        self.metrics = metrics
        self.timeout = timeout
        self._queue: queue.Queue[Batch | None] = queue.Queue(maxsize=queue_size)
        self._warn = ThrottledWarning(log)
        self._session = requests.Session()
        self._thread = threading.Thread(target=self._run, name="downstream", daemon=True)
        self._thread.start()

    def accept(self, batch: Batch) -> None:
        try:
            self._queue.put_nowait(batch)
        except queue.Full:
            self.metrics.incr("dropped", len(batch.spans), sink=self.name, reason="queue_full")
            self._warn.warn("downstream %s is not keeping up; dropping bodies", self.base_url)

    def _run(self) -> None:
        while (batch := self._queue.get()) is not None:
            self._send(batch)

    def _send(self, batch: Batch) -> None:
        headers = {"Content-Type": batch.content_type}
        if batch.content_encoding and batch.content_encoding != "identity":
            headers["Content-Encoding"] = batch.content_encoding
        url = f"{self.base_url}/api/v{batch.version}/spans"
        body = batch.raw
        if batch.mirror_as_v2:  # built here, on this thread: the request never waits for it
            body = json.dumps([span.v2 for span in batch.spans]).encode()
        try:
            reply = self._session.post(url, data=body, headers=headers, timeout=self.timeout)
            ok, detail = reply.status_code < 300, f"HTTP {reply.status_code}"
        except requests.RequestException as exc:
            ok, detail = False, str(exc)
        if ok:
            self.metrics.incr("forwarded", len(batch.spans), sink=self.name)
        else:
            self.metrics.incr("dropped", len(batch.spans), sink=self.name, reason="send_failed")
            self._warn.warn("mirroring to %s failed: %s", url, detail)

    def pending(self) -> int:
        return self._queue.qsize()

    def close(self) -> None:
        try:
            self._queue.put(None, timeout=self.timeout)
        except queue.Full:
            return
        self._thread.join(timeout=self.timeout * 2)
