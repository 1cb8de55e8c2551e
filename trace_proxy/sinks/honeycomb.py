"""Forward spans to Honeycomb with libhoney: batched, asynchronous, bounded.

libhoney queues events (dropping on overflow) and sends them from its own threads; its
worker pool's queue is unbounded though, so this sink also caps the number of events that
are handed to libhoney but not yet answered, dropping (and counting) beyond that.
"""
from __future__ import annotations

import logging
import threading

import libhoney
from libhoney.transmission import Transmission

from trace_proxy.sinks.honeycomb_events import BadDatasetTag, keep_trace, to_event
from trace_proxy.metrics import Metrics
from trace_proxy.settings import Settings
from trace_proxy.sinks import Batch, ThrottledWarning

log = logging.getLogger("trace_proxy.honeycomb")
USER_AGENT = "envoy-tracing-trace-proxy"


class HoneycombSink:
    name = "honeycomb"

    def __init__(self, settings: Settings, metrics: Metrics, *, send_frequency: float = 0.25):
        self.settings = settings
        self.metrics = metrics
        self.backlog = settings.honeycomb_backlog
        self._outstanding = 0
        self._lock = threading.Lock()
        self._warn = ThrottledWarning(log)
        transmission = Transmission(
            max_concurrent_batches=4, block_on_send=False, block_on_response=False,
            send_frequency=send_frequency, user_agent_addition=USER_AGENT,
            max_pending=self.backlog, max_responses=self.backlog * 2,
        )
        self.client = libhoney.Client(
            writekey=settings.writekey, dataset=settings.dataset, api_host=settings.api_host,
            transmission_impl=transmission,
        )
        self._responses = threading.Thread(target=self._read_responses, name="honeycomb-responses", daemon=True)
        self._responses.start()

    def accept(self, batch: Batch) -> None:
        for span in batch.spans:
            if not keep_trace(span.trace_id, self.settings.sample_rate):
                self.metrics.incr("dropped", sink=self.name, reason="sampled")
                continue
            try:
                event = to_event(span, self.settings.drop_fields, self.settings.sample_rate)
            except BadDatasetTag as exc:
                self.metrics.incr("dropped", sink=self.name, reason="bad_dataset_tag")
                self._warn.warn("not sent to Honeycomb: %s", exc)
                continue
            with self._lock:
                if self._outstanding >= self.backlog:
                    full = True
                else:
                    full = False
                    self._outstanding += 1
            if full:
                self.metrics.incr("dropped", sink=self.name, reason="backlog_full")
                self._warn.warn("Honeycomb is not keeping up; dropping events beyond %d waiting", self.backlog)
                continue
            ev = self.client.new_event()
            ev.add(event.fields)
            ev.created_at = event.timestamp
            ev.sample_rate = event.sample_rate
            if event.dataset:
                ev.dataset = event.dataset
            ev.send_presampled()

    def _read_responses(self) -> None:
        responses = self.client.responses()
        while True:
            resp = responses.get()
            if resp is None:  # libhoney's end-of-stream marker after close()
                return
            with self._lock:
                self._outstanding = max(0, self._outstanding - 1)
            status, error = resp.get("status_code") or 0, resp.get("error")
            if not error and 200 <= status < 300:
                self.metrics.incr("forwarded", sink=self.name)
            else:
                reason = "queue_overflow" if "overflow" in str(error or "") else "send_failed"
                self._warn.warn("sending to Honeycomb failed (status %s): %s", status or "none", error or resp.get("body"))
                self.metrics.incr("dropped", sink=self.name, reason=reason)

    def pending(self) -> int:
        with self._lock:
            return self._outstanding

    def close(self) -> None:
        self.client.close()
        self._responses.join(timeout=15)
