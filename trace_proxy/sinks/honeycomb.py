"""Forward spans to Honeycomb's batch API: batched, asynchronous, bounded, nothing lost unseen.

The request (on the server's event loop) only queues its batch's spans. The spooler thread
gathers what waits (up to `send_frequency` seconds or a full body), turns the spans into
events, serialises each (orjson) and compresses them into one body per dataset (zstd),
which goes into the spool (spool.py: on disk with `--spool-dir`, else in memory, bounded in
bytes). A few sender threads take the oldest bodies from the spool, POST each to
`/1/batch/<dataset>` and read Honeycomb's answer, which has one status per event: each
refused event is counted and logged on its own and the others are kept. A body leaves the
spool once answered. Serialising off the request thread halves the request latency at a
steady rate (p50 2.4-2.7 ms against 4.8-4.9 ms in bench/proxy_forwarding.py).

When Honeycomb fails (no connection, 5xx, 429) the bodies stay in the spool and are tried
again with exponential backoff and jitter (0.5 s doubling to RETRY_MAX_SECONDS, one probe
at a time), for as long as the spool has room: an outage loses nothing that fits, and what
does not fit is counted (spool_full). With a spool directory a restart, a SIGTERM past its
grace period or a kill -9 keeps the spooled bodies for the next start, and what waited for
the spooler is in the write-ahead journal (journal.py), written before the request is
answered: the next start sends it too.

Why not libhoney: it builds, queues, serialises and accounts for every event separately
(and sends two statsd UDP packets per event); the profile of the forwarding path spent
over half its time there, which capped the proxy near 6,500 spans/s on one core
(bench/proxy_forwarding.py measures both).

Memory is bounded by `honeycomb_backlog` (spans accepted, not yet spooled) and the spool's
bytes. When either is full while Honeycomb is answering (the proxy itself is the
bottleneck), a request waits up to BACKPRESSURE_SECONDS for room; otherwise, and after
that, new spans are dropped and counted (backlog_full, spool_full), so an unreachable
Honeycomb never grows the process or slows ingest.
"""
from __future__ import annotations

import logging
import queue
import random
import threading
import time
from dataclasses import dataclass
from urllib.parse import quote, urljoin

import requests

from trace_proxy.metrics import Metrics
from trace_proxy.settings import Settings
from trace_proxy.sinks import Batch, ThrottledWarning
from trace_proxy.sinks.honeycomb_batch import (CONTENT_ENCODING, MAX_EVENTS_PER_BODY, Piece, bodies, encode_event,
                                                event_results, pieces)
from trace_proxy.sinks.honeycomb_events import BadDatasetTag, keep_trace, span_event_events, to_event
from trace_proxy.sinks.journal import Journal
from trace_proxy.sinks.spool import Spool, Spooled

log = logging.getLogger("trace_proxy.honeycomb")
USER_AGENT = "envoy-tracing-trace-proxy"
SENDERS = 4  # concurrent batch requests: Honeycomb is ~100 ms away, bodies keep coming
RETRY_FIRST_SECONDS = 0.5  # the first wait after a failure; doubled at each failure after it
RETRY_MAX_SECONDS = 10.0  # the longest wait between tries: how late a recovery may be noticed
# Statuses that no retry will change: the body is dropped (and counted) at once.
RETRYABLE = frozenset({408, 429}) | frozenset(range(500, 600))
BACKPRESSURE_SECONDS = 2.0  # the longest a request waits for room while Honeycomb is answering
ANSWERING_SECONDS = 5.0  # Honeycomb counts as answering this long after its last 200
# How often the watchdog looks at the senders. A sender found dead is restarted at the next
# look, so /healthz says unhealthy for about this long and a sender dying at every batch
# cannot spin.
WATCH_SECONDS = 0.5


@dataclass
class _Pending:
    """One accepted batch's spans, waiting for a sender."""
    arrived: float
    spans: list
    count: int
    segment: int | None = None  # its journal segment (with a spool directory)


class HoneycombSink:
    name = "honeycomb"

    def __init__(self, settings: Settings, metrics: Metrics, *, send_frequency: float = 0.25,
                 timeout: float = 10.0):
        self.settings = settings
        self.metrics = metrics
        self.backlog = settings.honeycomb_backlog
        self.send_frequency = send_frequency
        self.timeout = timeout
        self.spool = Spool(settings.spool_dir or None, settings.spool_bytes)
        self.journal = Journal(settings.spool_dir) if settings.spool_dir else None
        self._batch_url = urljoin(settings.api_host, "/1/batch/")
        self._outstanding = 0
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)  # notified whenever the backlog shrinks
        self._last_answer = float("-inf")  # when Honeycomb last answered a batch with 200
        self._failing = False  # the last try failed: wait for _retry_at, then one probe at a time
        self._retry_at = 0.0
        self._backoff = 0.0
        self._probing = False
        self._warn = ThrottledWarning(log)
        self._waiting: queue.Queue = queue.Queue()  # bounded by the backlog through _outstanding
        self._closing = threading.Event()  # no more input: spool what waits, send what can be sent
        self._stopping = threading.Event()  # the senders stop, whatever is left
        if self.journal is not None:
            self._recover()
        self._targets = [self._spool_loop] + [self._send_loop] * SENDERS
        self._threads = [self._start(n) for n in range(len(self._targets))]
        self._dead: set[int] = set()  # threads the watchdog found dead, restarted at its next look
        self._watchdog = threading.Thread(target=self._watch, name="honeycomb-watchdog", daemon=True)
        self._watchdog.start()

    def _start(self, n: int) -> threading.Thread:
        name = "honeycomb-spooler" if n == 0 else f"honeycomb-sender-{n - 1}"
        thread = threading.Thread(target=self._targets[n], name=name, daemon=True)
        thread.start()
        return thread

    def _watch(self) -> None:
        while not self._stopping.wait(WATCH_SECONDS):
            if self._closing.is_set():  # the spooler ends on its own then
                continue
            for n, thread in enumerate(self._threads):
                if thread.is_alive():
                    continue
                if n in self._dead:
                    self._threads[n] = self._start(n)
                    self._dead.discard(n)
                    self.metrics.incr("restarted", sink=self.name)
                    log.warning("restarted the dead Honeycomb thread %s", thread.name)
                else:
                    self._dead.add(n)

    def _recover(self) -> None:
        """What a previous run accepted and never spooled (it was killed): spooled first."""
        recovered = self.journal.recover()
        for segment, spans in recovered:
            self._outstanding += len(spans)
            self._waiting.put(_Pending(time.monotonic(), spans, len(spans), segment))
        if recovered:
            log.info("journal: %d spans a previous run accepted and did not spool, to be sent",
                     sum(len(spans) for _, spans in recovered))

    def problems(self) -> list[str]:
        """A dead sender or spooler, until the watchdog restarts it: /healthz answers 503 meanwhile."""
        if self._closing.is_set():
            return []
        return [f"Honeycomb sender thread {t.name} is dead (restarting)" for t in self._threads if not t.is_alive()]

    # -- request (the server's event loop) -------------------------------------------------
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
        with self._room:
            # Honeycomb answering but the backlog full: the senders are behind because this
            # process is busy, so wait a little for room (clients slow down) rather than drop.
            # Honeycomb silent or failing: drop at once, so an outage never slows ingest.
            deadline = None
            while (self._outstanding + len(spans) > self.backlog and self._outstanding
                   or self.spool.full()) and self._answering():
                deadline = deadline or time.monotonic() + BACKPRESSURE_SECONDS
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._room.wait(left)
            room = max(0, self.backlog - self._outstanding)
            taken = min(room, len(spans))
            self._outstanding += taken
        if taken < len(spans):
            self.metrics.incr("dropped", len(spans) - taken, sink=self.name, reason="backlog_full")
            self._warn.warn("Honeycomb is not keeping up; dropping events beyond %d waiting", self.backlog)
        if taken:
            # Written before the 202: a kill before the spooler takes them loses nothing.
            segment = self.journal.append(spans[:taken]) if self.journal is not None else None
            self._waiting.put(_Pending(time.monotonic(), spans[:taken], taken, segment))

    def congested(self) -> bool:
        """True while an accept may wait for room: the backlog over half full while Honeycomb
        answers. The server then delivers off its event loop (asgi.py), so that health,
        queries and the web UI are answered while ingest is held back."""
        with self._lock:
            return (self._outstanding * 2 > self.backlog or self.spool.full(self.spool.max_bytes // 2)) \
                and self._answering()

    def _serialise(self, spans: list) -> tuple[dict[str, list[Piece]], int]:
        """The spans as events, in pieces per dataset, and how many could not be made events."""
        drop, rate = self.settings.drop_fields, self.settings.sample_rate
        docs: dict[str, list[tuple[list[str | None], bytes]]] = {}
        unusable = 0
        for span in spans:
            try:
                event = to_event(span, drop, rate)
                doc = encode_event(event)
            except BadDatasetTag as exc:
                unusable += 1
                self.metrics.incr("dropped", sink=self.name, reason="bad_dataset_tag")
                self._warn.warn("not sent to Honeycomb: %s", exc)
                continue
            except Exception as exc:  # RecursionError and the like: this span alone is lost, counted
                doc, error = None, f"{type(exc).__name__}: {exc}"
            else:
                error = "it cannot be written as JSON"
            if doc is None:
                unusable += 1
                self.metrics.incr("dropped", sink=self.name, reason="unserializable")
                self._warn.warn("not sent to Honeycomb: span %s: %s", span.v2.get("id"), error)
                continue
            ids = [event.fields["id"]]
            if span.span_events:  # an OTLP span's events and links: events of their own, in the same body
                parts = [doc]
                for extra in span_event_events(span, event, drop):
                    if (extra_doc := encode_event(extra)) is None:
                        self.metrics.incr("annotations", sink=self.name, reason="unserializable")
                        continue
                    ids.append(None)
                    parts.append(extra_doc)
                doc = b",".join(parts)
            docs.setdefault(event.dataset or self.settings.dataset, []).append((ids, doc))
        return {dataset: pieces(encoded) for dataset, encoded in docs.items()}, unusable

    def pending(self) -> int:
        """Spans accepted and not yet answered by Honeycomb: waiting for the spooler or spooled."""
        with self._lock:
            return self._outstanding + self.spool.stats()["spans"]

    def _settle(self, count: int) -> None:
        with self._room:
            self._outstanding = max(0, self._outstanding - count)
            self._room.notify_all()

    def _answering(self) -> bool:
        """Honeycomb answered a batch lately (called holding the lock)."""
        return time.monotonic() - self._last_answer < ANSWERING_SECONDS

    # -- sender threads -------------------------------------------------------------------
    def _gather_pending(self) -> list[_Pending] | None:
        """What waits, once the oldest has waited send_frequency or a body is full; None: closing."""
        first = None
        while first is None:
            if self._closing.is_set() and self._waiting.empty():
                return None
            try:
                first = self._waiting.get(timeout=0.1)
            except queue.Empty:
                continue
        gathered, count = [first], first.count
        deadline = first.arrived + self.send_frequency
        while count < MAX_EVENTS_PER_BODY:
            try:
                item = self._waiting.get_nowait()
            except queue.Empty:
                left = deadline - time.monotonic()
                if left <= 0 or self._closing.is_set():
                    break
                # Sleep rather than wait on the queue: a waiting getter would be woken
                # (and take the GIL) by every request's put.
                time.sleep(min(left, 0.02))
                continue
            gathered.append(item)
            count += item.count
        return gathered

    def _spool_loop(self) -> None:
        while (gathered := self._gather_pending()) is not None:
            if self.journal is not None:
                self.journal.rotate()  # later batches go to a new segment; this one can go once spooled
            try:
                self._spool_gathered(gathered)
            finally:
                if self.journal is not None:
                    for item in gathered:
                        self.journal.done(item.segment)

    def _spool_gathered(self, gathered: list[_Pending]) -> None:
        """Serialise and spool what was gathered; every span is settled and counted, whatever happens."""
        held = sum(item.count for item in gathered)
        try:
            by_dataset: dict[str, list[Piece]] = {}
            for item in gathered:
                docs, unusable = self._serialise(item.spans)
                self._settle(unusable)
                held -= unusable
                for dataset, pieces_ in docs.items():
                    by_dataset.setdefault(dataset, []).extend(pieces_)
            for dataset, docs in by_dataset.items():
                for body in bodies(dataset, docs):
                    if self.spool.put(body.dataset, body.events, body.data, body.span_ids,
                                      body.annotations) is None:
                        self.metrics.incr("dropped", body.events, sink=self.name, reason="spool_full")
                        self._warn.warn("the Honeycomb spool is full (%d bytes); dropping events",
                                        self.spool.max_bytes)
                    self._settle(body.events)
                    held -= body.events
        except Exception:
            log.exception("preparing a batch for Honeycomb failed unexpectedly")
            self.metrics.incr("dropped", held, sink=self.name, reason="error")
            self._settle(held)
        except BaseException:  # the thread dies (the watchdog restarts it): count what it held
            self.metrics.incr("dropped", held, sink=self.name, reason="sender_died")
            self._settle(held)
            raise

    def _send_loop(self) -> None:
        with requests.Session() as session:
            while not self._stopping.is_set():
                item = self.spool.claim() if self._may_send() else None
                if item is None:
                    time.sleep(0.02)  # polling: a waiting getter would be woken by every body
                    continue
                try:
                    self._send_spooled(session, item)
                except Exception:  # never lose the thread to a surprise; the body stays spooled
                    log.exception("sending a batch to Honeycomb failed unexpectedly")
                    self._failed(item, "unexpected error")

    def _may_send(self) -> bool:
        """Honeycomb is well, or the backoff is over and no other sender is probing it."""
        with self._lock:
            if not self._failing:
                return True
            if self._probing or time.monotonic() < self._retry_at:
                return False
            self._probing = True
            return True

    def _send_spooled(self, session: requests.Session, item: Spooled) -> None:
        data = self.spool.data(item)
        if data is None:
            self.metrics.incr("dropped", item.events, sink=self.name, reason="spool_unreadable")
            self.spool.remove(item)
            return
        url = self._batch_url + quote(item.dataset, safe="")
        headers = {"X-Honeycomb-Team": self.settings.writekey, "Content-Type": "application/json",
                   "Content-Encoding": CONTENT_ENCODING, "User-Agent": USER_AGENT}
        try:
            reply = session.post(url, data=data, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            self._failed(item, str(exc))
            return
        if reply.status_code in RETRYABLE:
            self._failed(item, f"HTTP {reply.status_code}: {reply.text[:200].strip()}")
            return
        self._recovered()
        if reply.status_code == 200:
            try:
                self._count(item, event_results(reply.content, item.events + len(item.annotations)))
            except ValueError as exc:
                self._refused(item, f"unreadable answer: {exc}")
            else:
                self.spool.remove(item)
        else:
            self._refused(item, f"HTTP {reply.status_code}: {reply.text[:200].strip()}")

    def _refused(self, item: Spooled, error: str) -> None:
        """An answer no retry changes: the body's spans are dropped and counted."""
        self.metrics.incr("dropped", item.events, sink=self.name, reason="send_failed")
        self._warn.warn("sending to Honeycomb failed (%d events): %s", item.events, error)
        self.spool.remove(item)

    def _failed(self, item: Spooled, error: str) -> None:
        """No answer, or one that says try later: back to the spool, and wait longer before the next try."""
        self.spool.release(item)
        self.metrics.incr("retried", item.events, sink=self.name)
        with self._lock:
            self._failing, self._probing = True, False
            self._backoff = min(RETRY_MAX_SECONDS, self._backoff * 2 or RETRY_FIRST_SECONDS)
            wait = self._backoff * random.uniform(0.5, 1.0)  # jitter: proxies restarted together spread out
            self._retry_at = time.monotonic() + wait
        spooled = self.spool.stats()["spans"]
        self._warn.warn("sending to Honeycomb failed (%s); %d spans kept in the spool, next try within %.1f s",
                        error, spooled, self._backoff)

    def _recovered(self) -> None:
        with self._lock:
            self._failing, self._probing, self._backoff = False, False, 0.0

    def _count(self, body: Spooled, results: list[tuple[int, str]]) -> None:
        with self._lock:
            self._last_answer = time.monotonic()
        annotations = set(body.annotations)
        if annotations:  # span events and links: counted apart, so that span counts stay spans
            kept_extra = sum(1 for i in annotations if 200 <= results[i][0] < 300)
            self.metrics.incr("annotations", kept_extra, sink=self.name, reason="forwarded")
            self.metrics.incr("annotations", len(annotations) - kept_extra, sink=self.name, reason="rejected")
        kept = sum(1 for i, (status, _) in enumerate(results) if 200 <= status < 300 and i not in annotations)
        self.metrics.incr("forwarded", kept, sink=self.name)
        if kept + len(annotations) == len(results):
            return
        self.metrics.incr("dropped", body.events - kept, sink=self.name, reason="rejected")
        for index, (status, error) in enumerate(results):
            if not 200 <= status < 300 and index not in annotations:
                span_id = body.span_ids[index] if body.span_ids else f"#{index} of a spooled batch"
                self._warn.warn("Honeycomb refused the event of span %s (status %s): %s", span_id, status, error)

    def close(self) -> None:
        """Spool what waits, then go on sending for up to `shutdown_seconds`; what is left
        stays in a spool directory for the next start, or is counted (reason shutdown)."""
        self._closing.set()
        deadline = time.monotonic() + self.settings.shutdown_seconds
        self._threads[0].join(timeout=max(0.0, deadline - time.monotonic()))  # the spooler: no network
        while self.spool.stats()["bodies"] and time.monotonic() < deadline:
            with self._lock:
                failing = self._failing
            if failing and self.spool.directory is not None:
                break  # Honeycomb is down: the spool directory keeps the rest
            time.sleep(0.02)
        self._stopping.set()
        for thread in self._threads[1:]:
            thread.join(timeout=max(0.1, min(1.0, deadline - time.monotonic())))
        with self._lock:
            unspooled = self._outstanding
        if self.journal is not None:
            self.journal.close()
            if unspooled:
                log.info("Honeycomb sink closed: %d spans not yet spooled are kept in the journal", unspooled)
            unspooled = 0  # the next start sends them
        spooled = self.spool.stats()["spans"]
        if unspooled:
            self.metrics.incr("dropped", unspooled, sink=self.name, reason="shutdown")
        if spooled and self.spool.directory is None:
            self.metrics.incr("dropped", spooled, sink=self.name, reason="shutdown")
            log.warning("Honeycomb sink closed: %d spans undelivered and lost (no --spool-dir)", spooled + unspooled)
        elif spooled:
            log.info("Honeycomb sink closed: %d spans kept in %s for the next start%s", spooled, self.spool.directory,
                     f", {unspooled} lost" if unspooled else "")
        else:
            log.info("Honeycomb sink closed: everything delivered%s", f" but {unspooled} spans" if unspooled else "")
