"""The trace proxy forwarding to a Honeycomb stand-in: throughput, latency, memory.

    python bench/proxy_forwarding.py [--seconds N] [--encoding json|proto|otlp]
                                     [--store-only] [--go-proxy PATH] [--otelcol PATH]

The proxy runs pinned to one core; the load client and the stand-in (a process of its own)
share the other. Figures:
- saturated: 8 keep-alive connections post 100-span Envoy-shaped batches back to back;
  spans/s accepted, spans/s delivered to the stand-in (until the last one arrived), spans
  lost, the proxy's CPU per span and its peak RSS;
- fixed rate: 40 requests/s of 100 spans (open model), p50/p99 request latency.
`bench/mesh.py` (`inv bench`) prints the same lines; GO_PROXY (or --go-proxy) names a
binary of the archived Go honeycomb-opentracing-proxy to measure beside ours, OTELCOL (or
--otelcol) an OpenTelemetry Collector (bench/collector_peer.py), both under the same load
(Zipkin JSON), with a side-by-side table and ours / peer ratios.
"""
from __future__ import annotations

import argparse
import http.client
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # otlp_batch, beside this file

from meshtools.local.mesh import trace_proxy_command  # noqa: E402
from meshtools.shared.background import serving  # noqa: E402
from meshtools.shared.net import free_port  # noqa: E402
from meshtools.shared.topology import LOOPBACK, PROJECT_ROOT  # noqa: E402
from meshtools.views.stats import nearest_rank  # noqa: E402

SPANS_PER_BATCH = 100
CONNECTIONS = 8
FIXED_RATE = 40  # requests/s
BODIES = 64  # distinct pre-built bodies (distinct trace ids), cycled
KEY = "bench-not-a-real-key"
TARGET_SPANS = 25_000  # delivered spans/s on one core, saturated (issue 13)
TARGET_P50_MS, TARGET_P99_MS = 2.0, 10.0  # at FIXED_RATE


@dataclass
class Figures:
    accepted_rate: float = 0.0
    delivered_rate: float = 0.0
    accepted: int = 0
    delivered: int = 0
    failed_requests: int = 0
    cpu_us_per_span: float | None = None
    peak_rss_mb: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    fixed_lost: int = 0

    @property
    def lost(self) -> int:
        return self.accepted - self.delivered


def span_batch(n: int = SPANS_PER_BATCH) -> list[dict]:
    """An Envoy-shaped v2 batch: one trace, ids distinct, the tags Envoy's router sets."""
    trace = uuid.uuid4().hex[:16]
    now = int(time.time() * 1e6)
    return [{
        "traceId": trace, "id": f"{i + 1:016x}", "name": "stage-0", "kind": "SERVER" if i % 2 else "CLIENT",
        "timestamp": now + i, "duration": 1000 + i, **({"parentId": f"{i:016x}"} if i else {}),
        "localEndpoint": {"serviceName": f"service1-{i % 3}", "ipv4": LOOPBACK},
        "remoteEndpoint": {"ipv4": LOOPBACK, "port": 9000},
        "tags": {"http.method": "GET", "http.url": "http://localhost:9000/stage/0", "http.status_code": "200",
                 "guid:x-request-id": str(uuid.uuid4()), "upstream_cluster": "service2", "response_flags": "-",
                 "component": "proxy", "node_id": "service1-0", "http.protocol": "HTTP/1.1",
                 "user_agent": "python-requests/2.32", "response_size": "22", "request_size": "0",
                 "peer.address": LOOPBACK, "downstream_cluster": "-"},
    } for i in range(n)]


def endpoint(encoding: str) -> str:
    """Where a body of `encoding` is posted: OTLP to /v1/traces, Zipkin to /api/v2/spans."""
    return "/v1/traces" if encoding == "otlp" else "/api/v2/spans"


def encode(spans: list[dict], encoding: str) -> tuple[bytes, str]:
    if encoding == "otlp":  # the same spans as OTLP/HTTP protobuf (bench/otlp_batch.py)
        import otlp_batch

        return otlp_batch.from_spans(spans), otlp_batch.CONTENT_TYPE
    if encoding == "proto":
        from trace_proxy.ingest.zipkin_proto import encode_spans

        return encode_spans(spans), "application/x-protobuf"
    import json

    return json.dumps(spans).encode(), "application/json"


def worker_pid(master: int) -> int:
    """gunicorn's one worker (the proxy's serving process), or the process itself (Go)."""
    deadline = time.monotonic() + 3  # gunicorn has forked its worker by the time it answers
    while time.monotonic() < deadline:
        try:
            children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        except OSError:
            return master
        if children:
            return int(children[0])
        time.sleep(0.05)
    return master


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float | None:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def standin_stats(url: str) -> dict:
    return requests.get(f"{url}/stats", timeout=5).json()


@contextmanager
def standin(cores: set[int] | None, log: Path):
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    with serving([sys.executable, "-m", "tests.support.honeycomb_standin", str(port)], f"{url}/stats",
                 log=log, cores=cores):
        yield url


def post_loop(port: int, bodies: list[bytes], ctype: str, stop: float, counts: dict, lock: threading.Lock,
              latencies: list[float] | None = None, schedule=None, path: str = "/api/v2/spans") -> None:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
    n = 0
    try:
        while True:
            if schedule is not None:
                if (when := schedule()) is None:
                    return
                if (wait := when - time.perf_counter()) > 0:
                    time.sleep(wait)
            elif time.monotonic() >= stop:
                return
            body = bodies[n % len(bodies)]
            n += 1
            start = time.perf_counter()
            try:
                conn.request("POST", path, body, {"Content-Type": ctype})
                reply = conn.getresponse()
                reply.read()
                ok = reply.status == (200 if path == "/v1/traces" else 202)  # OTLP's success is 200
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
                ok = False
            took = time.perf_counter() - start
            with lock:
                if ok:
                    counts["accepted"] += SPANS_PER_BATCH
                else:
                    counts["failed"] += 1
                if latencies is not None:
                    latencies.append(took)
    finally:
        conn.close()


def wait_delivered(url: str, expected: int, timeout: float = 30.0) -> tuple[int, float]:
    """(events the stand-in accepted, when the count last grew), once it stops growing or reaches `expected`."""
    deadline = time.monotonic() + timeout
    last, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        got = standin_stats(url)["accepted"]
        if got != last:
            last, last_change = got, time.monotonic()
        if got >= expected or time.monotonic() - last_change > 3.0:
            break
        time.sleep(0.05)
    return last, last_change


def saturated(port: int, standin_url: str, bodies: list[bytes], ctype: str, seconds: float, figures: Figures,
              pid: int, forwarding: bool, path: str = "/api/v2/spans") -> None:
    before = standin_stats(standin_url)["accepted"] if forwarding else 0
    counts, lock = {"accepted": 0, "failed": 0}, threading.Lock()
    cpu0 = cpu_seconds(pid)
    started = time.monotonic()
    stop = started + seconds
    threads = [threading.Thread(target=post_loop, args=(port, bodies, ctype, stop, counts, lock),
                                kwargs={"path": path}) for _ in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    accepted_done = time.monotonic()
    figures.accepted = counts["accepted"]
    figures.failed_requests = counts["failed"]
    figures.accepted_rate = counts["accepted"] / (accepted_done - started)
    if forwarding:
        delivered, last = wait_delivered(standin_url, before + counts["accepted"])
        figures.delivered = delivered - before
        figures.delivered_rate = figures.delivered / (max(last, accepted_done) - started)
    else:
        figures.delivered, figures.delivered_rate = counts["accepted"], figures.accepted_rate
    spent = cpu_seconds(pid) - cpu0
    figures.cpu_us_per_span = spent / max(figures.delivered, 1) * 1e6


def fixed_rate(port: int, standin_url: str, bodies: list[bytes], ctype: str, seconds: float, figures: Figures,
               forwarding: bool, path: str = "/api/v2/spans") -> None:
    before = standin_stats(standin_url)["accepted"] if forwarding else 0
    counts, lock, latencies = {"accepted": 0, "failed": 0}, threading.Lock(), []
    total = int(seconds * FIXED_RATE)
    start = time.perf_counter() + 0.1
    slots = iter(range(total))
    slot_lock = threading.Lock()

    def schedule():
        with slot_lock:
            n = next(slots, None)
        return None if n is None else start + n / FIXED_RATE

    threads = [threading.Thread(target=post_loop, args=(port, bodies, ctype, 0, counts, lock, latencies, schedule),
                                kwargs={"path": path}) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    figures.p50_ms = statistics.median(latencies) * 1000 if latencies else None
    figures.p99_ms = nearest_rank(latencies, 99) * 1000 if latencies else None
    figures.failed_requests += counts["failed"]
    if forwarding:
        delivered, _ = wait_delivered(standin_url, before + counts["accepted"])
        figures.fixed_lost = before + counts["accepted"] - delivered


def split_cores() -> tuple[set[int] | None, set[int] | None]:
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cores) >= 2:
        return {cores[0]}, set(cores[1:])
    return None, None


def measure(command: list[str], env: dict[str, str], health_path: str, *, seconds: float, encoding: str,
            forwarding: bool, standin_url: str, port: int, tmp: Path, label: str, any_answer: bool = False) -> Figures:
    proxy_cores, client_cores = split_cores()
    spans = [span_batch() for _ in range(BODIES)]
    encoded = [encode(s, encoding) for s in spans]
    bodies, ctype = [b for b, _ in encoded], encoded[0][1]
    figures = Figures()
    with serving(command, f"http://{LOOPBACK}:{port}{health_path}", log=tmp / f"{label}.log",
                 env=env, cores=proxy_cores, accept=(lambda reply: True) if any_answer else None) as proc:
        pid = worker_pid(proc.pid)
        saved = os.sched_getaffinity(0) if client_cores else None
        if client_cores:
            os.sched_setaffinity(0, client_cores)
        try:
            warm = Figures()
            path = endpoint(encoding)
            saturated(port, standin_url, bodies, ctype, 1.0, warm, pid, forwarding, path)
            saturated(port, standin_url, bodies, ctype, seconds, figures, pid, forwarding, path)
            fixed_rate(port, standin_url, bodies, ctype, seconds, figures, forwarding, path)
        finally:
            if saved:
                os.sched_setaffinity(0, saved)
        figures.peak_rss_mb = peak_rss_mb(pid)
    return figures


def our_proxy(seconds: float, encoding: str, forwarding: bool, standin_url: str, tmp: Path,
              options: tuple[str, ...] = ()) -> Figures:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HONEYCOMB_")}
    if forwarding:
        env.update(HONEYCOMB_API_KEY=KEY, HONEYCOMB_API_HOST=standin_url, HONEYCOMB_DATASET="bench")
    return measure(trace_proxy_command(LOOPBACK, port, *options), env, "/healthz", seconds=seconds, encoding=encoding,
                   forwarding=forwarding, standin_url=standin_url, port=port, tmp=tmp,
                   label=f"proxy-{encoding}-{'fwd' if forwarding else 'store'}{'-files' if options else ''}")


def go_proxy(binary: str, seconds: float, standin_url: str, tmp: Path) -> Figures:
    """The archived upstream proxy: its key only on the command line (a dummy key here)."""
    port = free_port()
    command = [binary, "-k", KEY, "-d", "bench", "--api_host", standin_url, "-p", f"{LOOPBACK}:{port}"]
    # It has no health endpoint: any HTTP answer means it listens.
    return measure(command, dict(os.environ), "/", seconds=seconds, encoding="json", forwarding=True,
                   standin_url=standin_url, port=port, tmp=tmp, label="go-proxy", any_answer=True)


def collector(binary: str, seconds: float, standin_url: str, tmp: Path) -> Figures:
    """The OpenTelemetry Collector (bench/collector_peer.py): Zipkin JSON in, OTLP/HTTP out to
    the stand-in's Honeycomb OTLP endpoint; the key in its environment, as ours gets it."""
    import collector_peer

    port, otlp_port = free_port(), free_port()
    config = tmp / "otelcol.yaml"
    config.write_text(collector_peer.config(LOOPBACK, port, otlp_port, standin_url, "bench"))
    env = {**os.environ, collector_peer.KEY_VARIABLE: KEY}
    # No health endpoint in this build: any HTTP answer of the zipkin receiver means it listens.
    return measure([binary, "--config", str(config)], env, "/", seconds=seconds, encoding="json", forwarding=True,
                   standin_url=standin_url, port=port, tmp=tmp, label="otelcol", any_answer=True)


def peers_table(rows: dict[str, Figures], report) -> None:
    """Ours beside each peer measured in this run, one line each, then ours / peer."""
    ours = rows["ours"]
    report("side by side", f"{'spans/s':>8} {'µs CPU/span':>11} {'p50 ms':>6} {'p99 ms':>6} {'RSS MB':>6}")
    for name, f in rows.items():
        report(f"  {name}", f"{f.delivered_rate:>8,.0f} {f.cpu_us_per_span:>11.0f} {f.p50_ms:>6.1f} "
                            f"{f.p99_ms:>6.1f} {f.peak_rss_mb:>6.0f}")
    for name, f in rows.items():
        if name != "ours" and f.delivered_rate:
            report(f"  ours / {name}", f"{ours.delivered_rate / f.delivered_rate:>7.2f}× "
                                       f"{ours.cpu_us_per_span / f.cpu_us_per_span:>10.2f}× "
                                       f"{ours.p50_ms / f.p50_ms:>5.2f}× {ours.p99_ms / f.p99_ms:>5.2f}× "
                                       f"{ours.peak_rss_mb / f.peak_rss_mb:>5.2f}×")


def describe(f: Figures) -> tuple[str, str]:
    lost = f"{f.lost} lost" if f.lost else "none lost"
    sat = (f"{f.accepted_rate:,.0f} accepted / {f.delivered_rate:,.0f} delivered spans/s, {lost}, "
           f"{f.cpu_us_per_span:.0f} µs CPU/span, peak RSS {f.peak_rss_mb:.0f} MB")
    fixed = (f"p50 {f.p50_ms:.1f} ms · p99 {f.p99_ms:.1f} ms"
             + (f", {f.fixed_lost} lost" if f.fixed_lost else "")
             + (f" ({f.failed_requests} failed requests)" if f.failed_requests else ""))
    return sat, fixed


def run(seconds: float, encodings: list[str], store_only: bool, go_binary: str | None, report,
        with_files: bool = False, otelcol_binary: str | None = None) -> dict[str, Figures]:
    """Measure and `report(label, text)` each figure; returns our proxy's figures by encoding
    (and "go", "otelcol" for the peers)."""
    tmp = Path(tempfile.mkdtemp(prefix="envoy-tracing-forwarding-"))
    _, client_cores = split_cores()
    results: dict[str, Figures] = {}
    with standin(client_cores, tmp / "standin.log") as url:
        for encoding in encodings:
            figures = results[encoding] = our_proxy(seconds, encoding, True, url, tmp)
            sat, fixed = describe(figures)
            report(f"proxy → Honeycomb ({encoding})", sat)
            report(f"  at {FIXED_RATE} req/s × {SPANS_PER_BATCH}", fixed)
        if "otlp" in results and "json" in results and results["json"].delivered_rate:
            otlp, zipkin = results["otlp"], results["json"]
            report("  OTLP / Zipkin JSON", f"{otlp.delivered_rate / zipkin.delivered_rate:.2f}× delivered spans/s, "
                   f"{otlp.cpu_us_per_span / zipkin.cpu_us_per_span:.2f}× CPU per span, "
                   f"p99 {otlp.p99_ms / zipkin.p99_ms:.2f}×")
        if with_files:  # as the local mesh runs it: the store written behind to SQLite, the spool on disk
            options = ("--store-file", str(tmp / "spans.sqlite"), "--spool-dir", str(tmp / "spool"))
            figures = results["files"] = our_proxy(seconds, "json", True, url, tmp, options)
            sat, fixed = describe(figures)
            report("proxy → Honeycomb, files", sat)
            report(f"  at {FIXED_RATE} req/s × {SPANS_PER_BATCH}", fixed)
            if "json" in results and results["json"].delivered_rate:
                memory = results["json"]
                report("  files / memory", f"{figures.delivered_rate / memory.delivered_rate:.2f}× delivered spans/s, "
                       f"{figures.cpu_us_per_span / memory.cpu_us_per_span:.2f}× CPU per span")
        if store_only:
            figures = our_proxy(seconds, "json", False, url, tmp)
            report("proxy store only (json)", f"{figures.accepted_rate:,.0f} spans/s, "
                   f"{figures.cpu_us_per_span:.0f} µs CPU/span, peak RSS {figures.peak_rss_mb:.0f} MB, "
                   f"p50 {figures.p50_ms:.1f} ms · p99 {figures.p99_ms:.1f} ms")
        if go_binary:
            figures = results["go"] = go_proxy(go_binary, seconds, url, tmp)
            sat, fixed = describe(figures)
            report("Go upstream proxy (json)", sat)
            report(f"  at {FIXED_RATE} req/s × {SPANS_PER_BATCH}", fixed)
            if "json" in results and figures.delivered_rate:
                ours = results["json"]
                report("  ours / Go", f"{ours.delivered_rate / figures.delivered_rate:.2f}× delivered spans/s, "
                       f"{ours.cpu_us_per_span / figures.cpu_us_per_span:.2f}× CPU per span, "
                       f"p50 {ours.p50_ms / figures.p50_ms:.2f}×, p99 {ours.p99_ms / figures.p99_ms:.2f}×")
        if otelcol_binary:
            figures = results["otelcol"] = collector(otelcol_binary, seconds, url, tmp)
            sat, fixed = describe(figures)
            report("OpenTelemetry Collector", sat)
            report(f"  at {FIXED_RATE} req/s × {SPANS_PER_BATCH}", fixed)
        peers = {name: results[key] for name, key in (("Go proxy", "go"), ("Collector", "otelcol")) if key in results}
        if peers and "json" in results:
            peers_table({"ours": results["json"], **peers}, report)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each run")
    parser.add_argument("--encoding", action="append", choices=("json", "proto", "otlp"),
                        help="repeatable (default json); otlp: the same spans as OTLP/HTTP protobuf to /v1/traces")
    parser.add_argument("--store-only", action="store_true", help="also measure the proxy without a Honeycomb key")
    parser.add_argument("--with-files", action="store_true",
                        help="also measure it as the local mesh runs it: --store-file (SQLite) and --spool-dir")
    parser.add_argument("--go-proxy", default=os.environ.get("GO_PROXY"), help="path of the Go upstream proxy binary")
    parser.add_argument("--otelcol", default=os.environ.get("OTELCOL"),
                        help="path of an OpenTelemetry Collector built by bench/collector_peer.py's manifest")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load avg {load:.1f} at start, {os.cpu_count()} cores", flush=True)
    run(args.seconds, args.encoding or ["json"], args.store_only, args.go_proxy,
        lambda label, text: print(f"{label:<28} {text}", flush=True), with_files=args.with_files,
        otelcol_binary=args.otelcol)
    return 0


if __name__ == "__main__":
    os.chdir(PROJECT_ROOT)
    sys.exit(main())
