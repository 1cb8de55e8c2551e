"""Forward spans to Honeycomb's batch API: batched, asynchronous, bounded, per-event accounting.

The request thread only queues the batch's spans (O(1)); one builder thread turns them into
events, serialises each (orjson) and gzips them into request bodies; a few sender threads
POST those to `/1/batch/<dataset>` and read Honeycomb's answer, which has one status per
event: each refused event is counted and logged on its own and the others are kept.

Why not libhoney: it builds, queues, serialises and accounts for every event separately
(and sends two statsd UDP packets per event); the profile of the forwarding path spent
over half its time there, which capped the proxy near 6,500 spans/s on one core. Working
a batch at a time, the same path delivers several times that (bench/proxy_forwarding.py).

Memory is bounded by `honeycomb_backlog`: spans accepted but not yet answered. Beyond it,
new spans are dropped and counted (reason backlog_full), so an unreachable Honeycomb
never grows the process or slows ingest.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from urllib.parse import quote, urljoin

import requests

from trace_proxy.metrics import Metrics
from trace_proxy.settings import Settings
from trace_proxy.sinks import Batch, ThrottledWarning
from trace_proxy.sinks.honeycomb_batch import MAX_EVENTS_PER_BODY, Body, bodies, encode_event, event_results
from trace_proxy.sinks.honeycomb_events import BadDatasetTag, keep_trace, to_event

log = logging.getLogger("trace_proxy.honeycomb")
USER_AGENT = "envoy-tracing-trace-proxy"
SENDERS = 4  # concurrent batch requests: Honeycomb is ~100 ms away, bodies keep coming
_STOP = None


class HoneycombSink:
    name = "honeycomb"

    def __init__(self, settings: Settings, metrics: Metrics, *, send_frequency: float = 0.25,
                 timeout: float = 10.0, retry_delay: float = 0.5):
        self.settings = settings
        self.metrics = metrics
        self.backlog = settings.honeycomb_backlog
        self.send_frequency = send_frequency
        self.timeout = timeout
        self.retry_delay = retry_delay
        self._batch_url = urljoin(settings.api_host, "/1/batch/")
        self._outstanding = 0
        self._lock = threading.Lock()
        self._warn = ThrottledWarning(log)
        self._inbox: queue.Queue = queue.Queue()
        self._outbox: queue.Queue = queue.Queue(maxsize=SENDERS * 2)
        self._builder = threading.Thread(target=self._build_loop, name="honeycomb-builder", daemon=True)
        self._senders = [threading.Thread(target=self._send_loop, name=f"honeycomb-sender-{n}", daemon=True)
                         for n in range(SENDERS)]
        self._builder.start()
        for sender in self._senders:
            sender.start()

    # -- request thread -------------------------------------------------------------------
    def accept(self, batch: Batch) -> None:
        spans = batch.spans
        rate = self.settings.sample_rate
        if rate > 1:
            kept = [s for s in spans if keep_trace(s.trace_id, rate)]
            if len(kept) < len(spans):
                self.metrics.incr("dropped", len(spans) - len(kept), sink=self.name, reason="sampled")
            spans = kept
        if not spans:
            return
        with self._lock:
            room = max(0, self.backlog - self._outstanding)
            taken = min(room, len(spans))
            self._outstanding += taken
        if taken < len(spans):
            self.metrics.incr("dropped", len(spans) - taken, sink=self.name, reason="backlog_full")
            self._warn.warn("Honeycomb is not keeping up; dropping events beyond %d waiting", self.backlog)
        if taken:
            self._inbox.put(spans if taken == len(spans) else spans[:taken])

    def pending(self) -> int:
        with self._lock:
            return self._outstanding

    def _settle(self, count: int) -> None:
        with self._lock:
            self._outstanding = max(0, self._outstanding - count)

    # -- builder thread -------------------------------------------------------------------
    def _build_loop(self) -> None:
        pending: list = []
        deadline = 0.0
        while True:
            try:
                item = self._inbox.get(timeout=max(0.0, deadline - time.monotonic()) if pending else None)
            except queue.Empty:
                item = ()
            if item is _STOP:
                self._build(pending)
                for _ in self._senders:
                    self._outbox.put(_STOP)
                return
            if item and not pending:
                deadline = time.monotonic() + self.send_frequency
            pending.extend(item)
            # Send when the oldest span has waited send_frequency, or a body is full.
            if pending and (not item or len(pending) >= MAX_EVENTS_PER_BODY):
                self._build(pending)
                pending = []

    def _build(self, spans: list) -> None:
        if not spans:
            return
        drop, rate = self.settings.drop_fields, self.settings.sample_rate
        by_dataset: dict[str, list[tuple[str, bytes]]] = {}
        unusable = 0
        for span in spans:
            try:
                event = to_event(span, drop, rate)
            except BadDatasetTag as exc:
                unusable += 1
                self.metrics.incr("dropped", sink=self.name, reason="bad_dataset_tag")
                self._warn.warn("not sent to Honeycomb: %s", exc)
                continue
            doc = encode_event(event)
            if doc is None:
                unusable += 1
                self.metrics.incr("dropped", sink=self.name, reason="unserializable")
                self._warn.warn("not sent to Honeycomb: span %s cannot be written as JSON", span.v2.get("id"))
                continue
            by_dataset.setdefault(event.dataset or self.settings.dataset, []).append((event.fields["id"], doc))
        self._settle(unusable)
        for dataset, docs in by_dataset.items():
            for body in bodies(dataset, docs):
                self._outbox.put(body)

    # -- sender threads -------------------------------------------------------------------
    def _send_loop(self) -> None:
        with requests.Session() as session:
            while (body := self._outbox.get()) is not _STOP:
                try:
                    self._send(session, body)
                except Exception:  # never lose the thread (nor the backlog accounting) to a surprise
                    log.exception("sending a batch to Honeycomb failed unexpectedly")
                    self.metrics.incr("dropped", body.events, sink=self.name, reason="send_failed")
                finally:
                    self._settle(body.events)

    def _send(self, session: requests.Session, body: Body) -> None:
        url = self._batch_url + quote(body.dataset, safe="")
        headers = {"X-Honeycomb-Team": self.settings.writekey, "Content-Type": "application/json",
                   "Content-Encoding": "gzip", "User-Agent": USER_AGENT}
        error = ""
        for attempt in (1, 2):
            try:
                reply = session.post(url, data=body.data, headers=headers, timeout=self.timeout)
            except requests.RequestException as exc:
                error, retry = str(exc), True
            else:
                if reply.status_code == 200:
                    try:
                        self._count(body, event_results(reply.content, body.events))
                        return
                    except ValueError as exc:
                        error, retry = f"unreadable answer: {exc}", False
                else:
                    error = f"HTTP {reply.status_code}: {reply.text[:200].strip()}"
                    retry = reply.status_code >= 500 or reply.status_code == 429
            if not retry or attempt == 2:
                break
            time.sleep(self.retry_delay)
        self.metrics.incr("dropped", body.events, sink=self.name, reason="send_failed")
        self._warn.warn("sending to Honeycomb failed (%d events): %s", body.events, error)

    def _count(self, body: Body, results: list[tuple[int, str]]) -> None:
        kept = sum(1 for status, _ in results if 200 <= status < 300)
        self.metrics.incr("forwarded", kept, sink=self.name)
        if kept == len(results):
            return
        self.metrics.incr("dropped", len(results) - kept, sink=self.name, reason="rejected")
        for span_id, (status, error) in zip(body.span_ids, results):
            if not 200 <= status < 300:
                self._warn.warn("Honeycomb refused the event of span %s (status %s): %s", span_id, status, error)

    def close(self) -> None:
        self._inbox.put(_STOP)
        self._builder.join(timeout=self.timeout * 2)
        for sender in self._senders:
            sender.join(timeout=self.timeout * 2)
