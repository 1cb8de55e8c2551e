"""The trace proxy under Honeycomb faults and its own deaths: does any accepted span go missing?

    python bench/proxy_faults.py [--rate SPANS_PER_S] [--outage-seconds N] [--long-outage]

One proxy process (with a spool directory) forwards to a Honeycomb stand-in in this process
while a client posts 100-span batches at a bounded rate (default 2,000 spans/s). Scenarios:
- outage: Honeycomb answers 503 for `--outage-seconds` (default 30), then recovers;
- SIGTERM: during an outage the proxy is stopped (SIGTERM) and started again, then Honeycomb recovers;
- kill -9: the same with SIGKILL;
- long outage (`--long-outage`, opt-in: it takes 5 minutes): a 5-minute 503 outage.
Each line: spans the proxy accepted (answered 202), distinct spans Honeycomb received, lost
(accepted and never received), duplicates (received twice: a body in flight at a kill is
sent again), and the most the spool held. Lost should be 0 while the spool has room, a
kill -9 included: what waited for the spooler is in the write-ahead journal.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from meshtools.local.mesh import trace_proxy_command  # noqa: E402
from meshtools.shared.background import serving, stop_group  # noqa: E402
from meshtools.shared.net import free_port  # noqa: E402
from meshtools.shared.topology import LOOPBACK  # noqa: E402
from proxy_forwarding import span_batch  # noqa: E402
from tests.support.honeycomb_standin import honeycomb_standin  # noqa: E402

KEY = "bench-not-a-real-key"
SPANS_PER_BATCH = 100


@dataclass
class Outcome:
    name: str
    accepted: int
    received: int
    duplicates: int
    spool_peak: int
    seconds: float

    @property
    def lost(self) -> int:
        return self.accepted - self.received

    def line(self) -> str:
        return (f"{self.name:<20} {self.accepted:>8,} accepted {self.received:>8,} received "
                f"{self.lost:>6,} lost {self.duplicates:>5,} dup  spool peak {self.spool_peak:>7,} spans "
                f"({self.seconds:.0f} s)")


class Load:
    """Posts 100-span batches at `rate` spans/s in a thread; counts the spans answered 202."""

    def __init__(self, rate: int):
        self.interval = SPANS_PER_BATCH / rate
        self.url = ""
        self.accepted: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self, url: str) -> "Load":
        self.url = url
        self._thread.start()
        return self

    def _run(self) -> None:
        import json

        session = requests.Session()
        next_at = time.monotonic()
        while not self._stop.is_set():
            spans = span_batch(SPANS_PER_BATCH)
            for span in spans:
                span["traceId"] = uuid.uuid4().hex[:16]  # distinct ids across the whole run
            try:
                reply = session.post(f"{self.url}/api/v2/spans", data=json.dumps(spans),
                                     headers={"Content-Type": "application/json"}, timeout=5)
                if reply.status_code == 202:
                    self.accepted.update((s["traceId"], s["id"]) for s in spans)
            except requests.RequestException:
                session = requests.Session()  # the proxy is restarting: these spans were never accepted
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class Proxy:
    def __init__(self, standin_url: str, spool: Path, log: Path):
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("HONEYCOMB_")},
                    "HONEYCOMB_API_KEY": KEY, "HONEYCOMB_API_HOST": standin_url}
        self.spool, self.log = spool, log
        self._stack = contextlib.ExitStack()
        self.process = None
        self.peak = 0

    def start(self) -> None:
        command = trace_proxy_command(LOOPBACK, self.port, "--spool-dir", str(self.spool), "--shutdown-seconds", "5")
        self.process = self._stack.enter_context(serving(command, f"{self.url}/healthz", log=self.log,
                                                         env=self.env, timeout=30))

    def signal(self, sig: int) -> None:
        os.killpg(self.process.pid, sig)
        self.process.wait(timeout=30)
        self._stack.close()
        self._stack = contextlib.ExitStack()

    def sample(self) -> None:
        with contextlib.suppress(requests.RequestException, KeyError, ValueError):
            spooled = requests.get(f"{self.url}/metrics.json", timeout=2).json()["spools"]["honeycomb"]["spans"]
            self.peak = max(self.peak, spooled)

    def drained(self) -> bool:
        with contextlib.suppress(requests.RequestException, KeyError, ValueError):
            return requests.get(f"{self.url}/metrics.json", timeout=2).json()["queues"]["honeycomb"] == 0
        return False

    def close(self) -> None:
        if self.process is not None:
            stop_group(self.process, 15)
        self._stack.close()


def wait(seconds: float, proxy: Proxy) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        proxy.sample()
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))


def scenario(name: str, rate: int, outage: float, death: int | None, tmp: Path) -> Outcome:
    started = time.monotonic()
    with honeycomb_standin() as standin:
        proxy = Proxy(standin.url, tmp / f"spool-{name.split()[0]}", tmp / f"{name.split()[0]}.log")
        proxy.start()
        load = Load(rate).start(proxy.url)
        try:
            wait(3, proxy)
            standin.outage = 503
            print(f"  {name}: Honeycomb down for {outage:g} s", file=sys.stderr, flush=True)
            if death is not None:
                wait(outage / 2, proxy)
                proxy.signal(death)
                proxy.start()
                load.url = proxy.url
                wait(outage / 2, proxy)
            else:
                wait(outage, proxy)
            standin.outage = None
            wait(3, proxy)
            load.stop()
            deadline = time.monotonic() + 120
            while not proxy.drained() and time.monotonic() < deadline:
                proxy.sample()
                time.sleep(0.5)
            time.sleep(1)  # the last answers counted
        finally:
            load.stop() if not load._stop.is_set() else None
            proxy.close()
        received = [(e["data"]["traceId"], e["data"]["id"]) for e in standin.events()]
    distinct = set(received)
    return Outcome(name, len(load.accepted), len(distinct & load.accepted), len(received) - len(distinct),
                   proxy.peak, time.monotonic() - started)


def run(rate: int, outage: float, long_outage: bool) -> list[Outcome]:
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="proxy-faults-") as tmp:
        plan = [(f"outage {outage:g} s", outage, None), ("SIGTERM in outage", outage, signal.SIGTERM),
                ("kill -9 in outage", outage, signal.SIGKILL)]
        if long_outage:
            plan.append(("outage 5 min", 300.0, None))
        for name, seconds, death in plan:
            outcome = scenario(name, rate, seconds, death, Path(tmp))
            print(outcome.line(), flush=True)
            outcomes.append(outcome)
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=int, default=2000, help="spans/s posted (default 2000)")
    parser.add_argument("--outage-seconds", type=float, default=30.0, help="length of each outage (default 30)")
    parser.add_argument("--long-outage", action="store_true", help="also a 5-minute outage (opt-in: slow)")
    args = parser.parse_args(argv)
    outcomes = run(args.rate, args.outage_seconds, args.long_outage)
    return 1 if any(o.lost for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
