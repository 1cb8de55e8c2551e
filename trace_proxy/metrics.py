"""The proxy's counters: thread-safe, shown as Prometheus text at /metrics and JSON at /metrics.json.

Counts are kept in one locked Counter keyed by (what, sink, reason), the cheapest thing on
the request path; a Prometheus collector turns them into metric families only when scraped,
beside the gauges (queue depths, store size) read at that moment and a histogram of request
latency. gunicorn runs the proxy as one worker process (the store lives in its
memory), so one in-process registry sees every request: no multiprocess mode is needed.
"""
from __future__ import annotations

import threading
from collections import Counter
from typing import Callable, Iterable

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

# Why a request was refused, by HTTP status, when the caller gives no finer reason.
STATUS_REASONS = {"400": "invalid", "404": "not_found", "405": "method_not_allowed", "413": "too_large",
                  "415": "unsupported_media_type"}
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """Counts keyed by (what, sink, reason); `snapshot()` renders them as JSON, `registry` for Prometheus."""

    def __init__(self):
        self._counts: Counter[tuple[str, str, str]] = Counter()
        self._lock = threading.Lock()
        self._gauges: list[Callable[[], Iterable]] = []
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_Collector(self))
        self.request_seconds = Histogram(
            "trace_proxy_request_duration_seconds", "Time to answer an HTTP request, by route and status.",
            ["method", "route", "status"], buckets=LATENCY_BUCKETS, registry=self.registry)

    def incr(self, what: str, n: int = 1, *, sink: str = "", reason: str = "") -> None:
        if n:
            with self._lock:
                self._counts[(what, sink, reason)] += n

    def reject(self, status: int, reason: str = "") -> None:
        """One refused request: `reason` is a short code (label value), the status its fallback."""
        self.incr("rejected", sink=str(status), reason=reason or STATUS_REASONS.get(str(status), "other"))

    def add_gauges(self, source: Callable[[], Iterable]) -> None:
        """`source()` yields prometheus metric families, read at every scrape (queue depths, store size)."""
        self._gauges.append(source)

    def counts(self) -> list[tuple[tuple[str, str, str], int]]:
        with self._lock:
            return list(self._counts.items())

    def snapshot(self) -> dict:
        out: dict = {"received": {"requests": 0, "spans": 0}, "rejected": {"requests": 0, "by_status": {}},
                     "forwarded": {}, "dropped": {}}
        for (what, sink, reason), value in self.counts():
            if what == "received":
                out["received"][reason or "spans"] = out["received"].get(reason or "spans", 0) + value
                if sink:  # the encoding the spans came in
                    by_encoding = out["received"].setdefault("by_encoding", {})
                    by_encoding[sink] = by_encoding.get(sink, 0) + value
            elif what == "rejected":
                status = sink or reason  # reason alone: a caller that passed the status as reason
                out["rejected"]["requests"] += value
                out["rejected"]["by_status"][status] = out["rejected"]["by_status"].get(status, 0) + value
            elif what in ("forwarded", "restarted", "retried"):
                by_sink = out.setdefault(what, {})
                by_sink[sink] = by_sink.get(sink, 0) + value
            elif what == "dropped":
                out["dropped"].setdefault(sink, {})
                out["dropped"][sink][reason] = out["dropped"][sink].get(reason, 0) + value
        return out


class _Collector:
    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def describe(self):
        return []  # families are only known at collect time; don't run collect() at registration

    def collect(self):
        received = CounterMetricFamily("trace_proxy_received", "Span requests and spans accepted for parsing.",
                                       labels=["what"])
        rejected = CounterMetricFamily("trace_proxy_requests_rejected", "Requests answered 4xx, by status and reason.",
                                       labels=["status", "reason"])
        forwarded = CounterMetricFamily("trace_proxy_spans_forwarded", "Spans a sink delivered.", labels=["sink"])
        encodings = CounterMetricFamily("trace_proxy_spans_received_by_encoding",
                                        "Spans accepted, by the encoding they came in.", labels=["encoding"])
        dropped = CounterMetricFamily("trace_proxy_spans_dropped", "Spans a sink did not deliver, by reason.",
                                      labels=["sink", "reason"])
        restarted = CounterMetricFamily("trace_proxy_sender_restarts", "Sender threads found dead and restarted.",
                                        labels=["sink"])
        retried = CounterMetricFamily("trace_proxy_spans_retried", "Spans of batches kept to be sent again after a "
                                      "failure (not lost: see trace_proxy_spans_dropped).", labels=["sink"])
        annotations = CounterMetricFamily(
            "trace_proxy_span_annotations", "OTLP span events and links sent to Honeycomb as events of their "
            "own (not spans: not in the span counts), by outcome.", labels=["sink", "outcome"])
        sums: Counter = Counter()
        for (what, sink, reason), value in self.metrics.counts():
            if what == "rejected" and not sink:  # the status given as the reason
                sink, reason = reason, STATUS_REASONS.get(reason, "other")
            if what == "received" and sink:
                encodings.add_metric([sink], value)
                sink = ""
            sums[(what, sink, reason or ("spans" if what == "received" else ""))] += value
        received.add_metric(["requests"], sums.pop(("received", "", "requests"), 0))
        received.add_metric(["spans"], sums.pop(("received", "", "spans"), 0))
        for (what, sink, reason), value in sorted(sums.items()):
            if what == "received":
                received.add_metric([reason], value)
            elif what == "rejected":
                rejected.add_metric([sink, reason], value)
            elif what == "forwarded":
                forwarded.add_metric([sink], value)
            elif what == "dropped":
                dropped.add_metric([sink, reason], value)
            elif what == "restarted":
                restarted.add_metric([sink], value)
            elif what == "retried":
                retried.add_metric([sink], value)
            elif what == "annotations":
                annotations.add_metric([sink, reason], value)
        yield from (received, encodings, rejected, forwarded, dropped, restarted, retried, annotations)
        for source in self.metrics._gauges:
            yield from source()


def gauge(name: str, documentation: str, values: dict[str, float] | float, label: str = "") -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=[label] if label else None)
    if isinstance(values, dict):
        for key, value in values.items():
            family.add_metric([key], value)
    else:
        family.add_metric([], values)
    return family


def counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)
