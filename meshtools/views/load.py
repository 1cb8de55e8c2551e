"""Load generator behind `inv load`: `/echo/<name>` requests in a closed or an open model.

Closed model (`concurrency`): each worker sends its next request when the previous one
answers, so the offered load drops when the mesh slows down. Open model (`rate`): request i
is due at start + i/rate whatever happens; its latency counts from that intended send time,
so a stalled mesh shows up as latency instead of being hidden (coordinated omission).

Memory stays bounded on long runs: latencies go into log-spaced buckets (`LatencyHistogram`),
errors into a counter by status.

The latency percentiles are of answered requests only (any HTTP status): a refused connection
"answers" in a millisecond and would make a dead mesh look fast. Requests with no answer
(refused, reset, timed out) and requests still unanswered when the run ended are counted
apart.
"""
from __future__ import annotations

import itertools
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable

import requests
from rich.console import Console
from rich.live import Live
from rich.text import Text

from meshtools.views.front import echo_url
from meshtools.views.stats import LogBins, rank
from meshtools.views.urls import check_base_url

DEFAULT_NAMES = ("earth", "fire", "wind", "water")  # the seed's generate-load.sh names
DEFAULT_DURATION = 10.0  # seconds, when neither duration nor requests is given
DEFAULT_CONCURRENCY = 4  # closed model workers
DEFAULT_OPEN_WORKERS = 64  # open model: most requests in flight at once
DEFAULT_TIMEOUT = 10.0  # seconds; the slow stage alone can take 3.3 s
LATE_START_SECONDS = 0.010  # open model: a request sent this late means the pool was full
MAX_WORKERS = 1000  # one thread each
MAX_RATE = 100_000.0  # requests per second; far beyond what one Python process sends
MAX_SECONDS = 366 * 24 * 3600.0  # sockets and waits overflow on absurd timeouts; a year is plenty


class LatencyHistogram:
    """Latencies in log-spaced buckets, each 1% wide: percentiles within 1%, memory O(log range).

    Like HdrHistogram, it trades exactness for a fixed footprint: about 230 buckets per
    decade of latency are possible, and only buckets that were hit are stored.
    """

    GROWTH = 1.01
    FLOOR = 1e-6  # seconds; anything faster lands in the first bucket

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = 0.0

    def _index(self, seconds: float) -> int:
        return max(0, math.ceil(math.log(max(seconds, self.FLOOR) / self.FLOOR, self.GROWTH)))

    def _upper(self, index: int) -> float:
        return self.FLOOR * self.GROWTH**index

    def record(self, seconds: float) -> None:
        self.counts[self._index(seconds)] += 1
        self.count += 1
        self.total += seconds
        self.min = min(self.min, seconds)
        self.max = max(self.max, seconds)

    def percentile(self, p: float) -> float | None:
        """The nearest-rank p-th percentile (0 < p <= 100), in seconds, to its bucket's 1%; None when empty.

        Bucketed: the rank is `stats.rank`'s, the value the upper bound of the bucket holding it.
        """
        if not self.count:
            return None
        wanted = rank(p, self.count)
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= wanted:
                # A bucket's upper bound is at most 1% above any value in it; clamp to what
                # was really seen so p100 == max and tiny samples stay honest.
                return min(max(self._upper(index), self.min), self.max)
        return self.max

    def bins(self, n: int = 12) -> list[tuple[float, float, int]]:
        """About n log-spaced (low, high, count) display bins between min and max, in seconds."""
        if not self.count:
            return []
        low, high = self.min, self.max
        scale = LogBins(low, high, n)
        if scale.narrow:  # every latency the same: one bin says so
            return [(low, high, self.count)]
        counts = [0] * n
        for index, c in self.counts.items():
            # Place each bucket by its midpoint, clamped into the seen range.
            counts[scale.slot(min(max(self._upper(index) / math.sqrt(self.GROWTH), low), high))] += c
        return [(scale.edges[i], scale.edges[i + 1], counts[i]) for i in range(n)]


def _check_seconds(value: float | None, flag: str, what: str) -> None:
    if value is not None and not (math.isfinite(value) and 0 < value <= MAX_SECONDS):
        raise ValueError(f"{flag} must be {what} (at most a year), got {value:g}.")


@dataclass
class LoadConfig:
    url: str
    names: tuple[str, ...] = DEFAULT_NAMES
    duration: float | None = None
    requests: int | None = None
    concurrency: int | None = None
    rate: float | None = None
    timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        if self.duration is None and self.requests is None:
            self.duration = DEFAULT_DURATION
        _check_seconds(self.duration, "--duration", "a positive number of seconds")
        _check_seconds(self.timeout, "--timeout", "a positive number of seconds")
        if self.rate is not None and not 0 < self.rate <= MAX_RATE:  # False for nan, too
            raise ValueError(f"--rate must be a positive number of requests per second up to {MAX_RATE:g}, "
                             f"got {self.rate:g}.")
        if self.requests is not None and self.requests <= 0:
            raise ValueError("--requests must be a positive whole number.")
        if self.concurrency is not None and not 0 < self.concurrency <= MAX_WORKERS:
            raise ValueError(f"--concurrency must be a whole number from 1 to {MAX_WORKERS}.")
        if not self.names or not all(n.strip() for n in self.names):
            raise ValueError("--names needs at least one non-empty name, comma separated.")
        check_base_url(self.url)

    @property
    def model(self) -> str:
        return "open" if self.rate else "closed"

    @property
    def workers(self) -> int:
        if self.concurrency:
            return self.concurrency
        return DEFAULT_OPEN_WORKERS if self.rate else DEFAULT_CONCURRENCY


@dataclass
class Result:
    """One finished request, handed to `on_result` (the benchmark keeps the request ids)."""

    name: str
    status: int | None  # None: no HTTP answer (timeout, refused)
    error: str | None  # "500", "timeout", "connection error"...; None when it succeeded
    latency: float  # seconds, from the intended send time in the open model
    request_id: str | None = None


@dataclass
class LoadSummary:
    config: LoadConfig
    elapsed: float = 0.0
    histogram: LatencyHistogram = field(default_factory=LatencyHistogram)  # answered requests only
    no_answer: int = 0  # finished without an HTTP answer: refused, reset, timed out
    statuses: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    late_starts: int = 0
    interrupted: bool = False
    in_flight_abandoned: int = 0
    sent: int = 0
    send_window: float = 0.0  # open model: from the start to one interval after the last send

    @property
    def completed(self) -> int:
        """Requests that finished: answered, or failed without an answer."""
        return self.histogram.count + self.no_answer

    @property
    def answered(self) -> int:
        return self.histogram.count

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def throughput(self) -> float:
        """Answers per second over the whole run, the wait for the last answers included."""
        return self.completed / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def send_rate(self) -> float | None:
        """Open model: requests sent per second while sending (what --rate asked for); None when closed."""
        if not self.config.rate:
            return None
        return self.sent / self.send_window if self.send_window > 0 else 0.0

    def to_dict(self) -> dict:
        ms = lambda s: None if s is None else round(s * 1000, 3)  # noqa: E731
        h = self.histogram
        return {
            "url": self.config.url,
            "model": self.config.model,
            "concurrency": self.config.workers,
            "target_rate": self.config.rate,
            "requests": self.completed,
            "answered": self.answered,
            "no_answer": self.no_answer,
            "unanswered": self.in_flight_abandoned,  # still in flight when the run ended
            "ok": self.completed - self.error_count,
            "errors": self.error_count,
            "errors_by_status": dict(sorted(self.errors.items())),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "sent": self.sent,
            "elapsed_s": round(self.elapsed, 3),
            "send_rate": None if self.send_rate is None else round(self.send_rate, 3),
            "throughput": round(self.throughput, 3),
            "latency_of": "answered requests",
            "latency_ms": {
                "p50": ms(h.percentile(50)),
                "p90": ms(h.percentile(90)),
                "p99": ms(h.percentile(99)),
                "max": ms(h.max if h.count else None),
                "min": ms(h.min if h.count else None),
                "mean": ms(h.total / h.count if h.count else None),
            },
            "late_starts": self.late_starts,
            "interrupted": self.interrupted,
            "in_flight_abandoned": self.in_flight_abandoned,
        }


def classify(status: int | None, exc: BaseException | None) -> str | None:
    """The error label of one request: its status when 4xx/5xx, the failure kind otherwise."""
    if exc is not None:
        if isinstance(exc, requests.Timeout):
            return "timeout"
        if isinstance(exc, requests.ConnectionError):
            return "connection error"
        return type(exc).__name__
    if status is not None and status >= 400:
        return str(status)
    return None


class LoadRun:
    """One run of the load generator; `run()` blocks, `stop()` ends it early from any thread."""

    def __init__(self, config: LoadConfig, on_result: Callable[[Result], None] | None = None):
        self.config = config
        self.on_result = on_result
        self.summary = LoadSummary(config)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._tickets = itertools.count()
        self._in_flight = 0
        self._started = 0.0
        self._last_send = 0.0
        self._deadline = math.inf
        self._closed = False  # the run has ended: answers arriving now are not counted
        self._threads: list[threading.Thread] = []

    # -- progress, read by the live line from another thread
    def snapshot(self) -> dict:
        with self._lock:
            elapsed = time.monotonic() - self._started if self._started else 0.0
            return {
                "requests": self.summary.completed,
                "errors": self.summary.error_count,
                "elapsed": elapsed,
                "rate": self.summary.completed / elapsed if elapsed > 0 else 0.0,
                "p50": self.summary.histogram.percentile(50),
                "in_flight": self._in_flight,
            }

    def stop(self) -> None:
        self._stop.set()

    def _next_ticket(self) -> int | None:
        if self._stop.is_set():
            return None
        with self._lock:
            i = next(self._tickets)
        if self.config.requests is not None and i >= self.config.requests:
            return None
        return i

    def _url(self, i: int) -> tuple[str, str]:
        name = self.config.names[i % len(self.config.names)]
        return name, echo_url(self.config.url, name)

    def _worker(self) -> None:
        rate = self.config.rate
        with requests.Session() as session:  # one per worker: keep-alive without sharing
            while True:
                # Closed model: the deadline is checked before a ticket is taken, so the sent
                # requests are always tickets 0..n-1 and the names keep their cycle.
                if not rate and time.monotonic() >= self._deadline:
                    return
                i = self._next_ticket()
                if i is None:
                    return
                if rate:
                    intended = self._started + i / rate
                    if intended >= self._deadline:
                        return
                    # In steps: a wait of years overflows, and a far-off request is still stoppable.
                    while (delay := intended - time.monotonic()) > 0:
                        if self._stop.wait(min(delay, 1.0)):
                            return
                    late = time.monotonic() - intended > LATE_START_SECONDS
                else:
                    intended = time.monotonic()
                    late = False
                self._send(session, i, intended, late)

    def _send(self, session: requests.Session, i: int, intended: float, late: bool) -> None:
        name, url = self._url(i)
        status, exc, request_id = None, None, None
        with self._lock:
            if self._closed:
                return  # the run ended while this worker took its ticket: not sent, not counted
            self._in_flight += 1
            self.summary.sent += 1
            self._last_send = time.monotonic()
        try:
            response = session.get(url, timeout=self.config.timeout)
            status = response.status_code
            request_id = response.headers.get("x-request-id")
            response.close()
        except requests.RequestException as e:
            exc = e
        latency = time.monotonic() - intended
        error = classify(status, exc)
        with self._lock:
            self._in_flight -= 1
            if self._closed:
                return  # answered after the end (--duration, Ctrl-C): the summary is being printed
            if status is not None:
                self.summary.histogram.record(latency)
                self.summary.statuses[status] += 1
            else:
                self.summary.no_answer += 1
            if error:
                self.summary.errors[error] += 1
            self.summary.late_starts += late
        if self.on_result:
            self.on_result(Result(name, status, error, latency, request_id))

    def run(self, grace: float = 2.0) -> LoadSummary:
        """Run to the end (or to `stop()`/Ctrl-C) and return the summary.

        A run with a duration ends on time: requests still in flight then are counted as
        abandoned, not waited for (the slow stage alone takes up to 3.3 s). After Ctrl-C they
        get `grace` seconds to answer first.
        """
        self._started = time.monotonic()
        if self.config.duration is not None:
            self._deadline = self._started + self.config.duration
        threads = self._threads = [
            threading.Thread(target=self._worker, name=f"load-{n}", daemon=True)
            for n in range(self.config.workers)
        ]
        for t in threads:
            t.start()
        try:
            while any(t.is_alive() for t in threads):
                left = self._deadline - time.monotonic()
                if left <= 0:
                    break
                time.sleep(min(0.05, left))
            self._stop.set()
        except KeyboardInterrupt:
            self._stop.set()
            end = time.monotonic() + grace
            for t in threads:
                t.join(max(0.0, end - time.monotonic()))
            self.summary.interrupted = True
        with self._lock:
            self._closed = True
            self.summary.in_flight_abandoned = self._in_flight
        self.summary.elapsed = time.monotonic() - self._started
        if self.config.rate and self.summary.sent:
            self.summary.send_window = self._last_send - self._started + 1 / self.config.rate
        return self.summary

    def drain(self, timeout: float) -> int:
        """After `run`: let the requests still in flight get their answers (not counted), for up to
        `timeout` seconds; how many are still unanswered then.

        A request cut off when the process exits is a client disconnect to Envoy: its trace, in
        the UI and in Honeycomb, would read as an error (no response, DC) that never happened.
        """
        end = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, end - time.monotonic()))
        with self._lock:
            return self._in_flight


def failures(summary: LoadSummary) -> int:
    """Requests that did not succeed: HTTP errors, no answer, and those unanswered at the end."""
    return summary.error_count + summary.in_flight_abandoned


def run_load(
    config: LoadConfig,
    on_result: Callable[[Result], None] | None = None,
    progress: Callable[[LoadRun], None] | None = None,
) -> LoadSummary:
    """Run a load test; `progress(run)` (e.g. `live_progress`) wraps it in a live display."""
    run = LoadRun(config, on_result)
    if progress is None:
        return run.run()
    return progress(run)


def parse_names(text: str | Iterable[str]) -> tuple[str, ...]:
    if isinstance(text, str):
        text = text.split(",")
    return tuple(n.strip() for n in text if n.strip())


# -- terminal output -------------------------------------------------------------------


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def plural(count: int, word: str, words: str | None = None) -> str:
    """'1 request', '0 requests', '3 requests'."""
    return f"{count} {word if count == 1 else (words or word + 's')}"


def progress_line(snap: dict, config: LoadConfig) -> Text:
    elapsed = snap["elapsed"]
    if config.duration is not None:
        # Whole seconds gone, never past the duration: 0s/5s … 5s/5s.
        clock = f"{int(min(elapsed, config.duration))}s/{config.duration:g}s"
    else:
        clock = f"{int(elapsed)}s · {snap['requests']}/{config.requests}"
    line = Text(
        f"{plural(snap['requests'], 'request')} · {snap['rate']:.1f} req/s · "
        f"{clock} · p50 {_ms(snap['p50'])} · {snap['in_flight']} in flight · "
    )
    errors = snap["errors"]
    line.append(plural(errors, "error"), style="bold red" if errors else "green")
    return line


def live_progress(console: Console) -> Callable[[LoadRun], LoadSummary]:
    """A `progress` for `run_load`: one line refreshed a few times a second, gone at the end."""

    def wrap(run: LoadRun) -> LoadSummary:
        with Live(
            progress_line(run.snapshot(), run.config),
            console=console,
            transient=True,
            refresh_per_second=4,
            get_renderable=lambda: progress_line(run.snapshot(), run.config),
        ):
            return run.run()

    return wrap


MIN_FOR_HISTOGRAM = 5  # fewer answers: the latency line already shows each of them
HISTOGRAM_BINS = 12  # at most; fewer for small runs (about the square root of the count)


def histogram_bins(count: int) -> int:
    """How many bins `count` latencies fill usefully: ~√count, at most HISTOGRAM_BINS."""
    return max(1, min(HISTOGRAM_BINS, round(math.sqrt(count))))


def render_summary(summary: LoadSummary, console: Console, bar_width: int = 40) -> None:
    d = summary.to_dict()
    lat = d["latency_ms"]
    title = f"{d['model']} model · {summary.config.url}"
    if summary.config.rate:
        title += f" · target {summary.config.rate:g} req/s, up to {d['concurrency']} in flight"
    else:
        title += f" · concurrency {d['concurrency']}"
    console.print(Text(title, style="bold"))
    if not summary.completed:
        stopped = "interrupted" if summary.interrupted else "stopped"
        console.print(Text(f"{stopped} after {d['elapsed_s']:.1f} s with no answer"
                           + _abandoned(summary), style="yellow"))
        return
    if summary.send_rate is None:
        console.print(f"{plural(d['requests'], 'request')} in {d['elapsed_s']:.1f} s · {summary.throughput:.1f} req/s")
    else:
        # The wait for the last answers is not sending time: both rates, each named.
        console.print(
            f"{plural(d['requests'], 'request')} in {d['elapsed_s']:.1f} s · sent at {summary.send_rate:.1f} req/s "
            f"(target {summary.config.rate:g}) · {summary.throughput:.1f} answers/s overall"
        )
    if summary.error_count:
        by = ", ".join(f"{k}: {v}" for k, v in d["errors_by_status"].items())
        console.print(Text(f"ERRORS {summary.error_count} ({by})", style="bold red"))
    else:
        console.print(Text("errors 0", style="green"))
    if summary.no_answer:
        console.print(Text(f"{plural(summary.no_answer, 'request')} got no answer: not in the latencies",
                           style="bold red"))
    if summary.answered:
        of = f"of the {summary.answered} answered " if summary.no_answer else ""
        console.print(f"latency {of}"
                      + " · ".join(f"{k} {_ms(None if lat[k] is None else lat[k] / 1000)}"
                                   for k in ("p50", "p90", "p99", "max")))
    else:
        console.print(Text("latency: none, no request was answered", style="bold red"))
    if summary.late_starts:
        console.print(
            Text(
                f"{plural(summary.late_starts, 'request')} started late: all {d['concurrency']} workers were "
                "busy (their wait counts in the latencies; raise --concurrency to offer the full rate)",
                style="yellow",
            )
        )
    if summary.interrupted or summary.in_flight_abandoned:
        stopped = "interrupted" if summary.interrupted else "time is up"
        console.print(Text(stopped + (_abandoned(summary) or "; every request sent was answered"), style="yellow"))
    if summary.answered < MIN_FOR_HISTOGRAM:
        return
    bins = summary.histogram.bins(histogram_bins(summary.answered))
    peak = max(c for _, _, c in bins)
    ranges = [f"{low * 1000:.1f}–{high * 1000:.1f} ms" for low, high, _ in bins]
    range_width = max(map(len, ranges))
    count_width = max(len(str(c)) for _, _, c in bins)
    for text, (_, _, count) in zip(ranges, bins):
        width = 0 if not count else max(1, round(bar_width * count / peak))
        line = Text(f"{text:>{range_width}}  {str(count):>{count_width}}")
        if width:
            line.append(" " + "█" * width, style="cyan")
        console.print(line)


def _abandoned(summary: LoadSummary) -> str:
    n = summary.in_flight_abandoned
    return f"; {plural(n, 'request')} unanswered at the end, not counted" if n else ""
