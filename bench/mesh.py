"""Benchmark the local mesh: one line per figure, all measured in this run.

    python bench/mesh.py [--quick] [--write]      (or `inv bench`)

Figures: cold start, mesh scaling under a fixed 0.5 s slow stage, the sidecars' cost,
the per-hop overhead of one Envoy, the trace proxy's ingest rate on one core (store only), the
trace proxy forwarding to a Honeycomb stand-in (bench/proxy_forwarding.py: saturated spans/s
delivered, latency at 40 req/s, peak RSS; Zipkin JSON and protobuf and the same spans as OTLP
protobuf, with OTLP's ratio to Zipkin JSON; the Go upstream proxy too when GO_PROXY names its
binary, the OpenTelemetry Collector when OTELCOL does), and trace completeness under load.
Everything runs on free loopback ports in a temporary directory, never on 8000/9411, and stops
whatever happens. No span reaches the real Honeycomb (no key of yours is passed on). `--write`
puts the figures and the machine into docs/benchmark.md; nothing else is saved.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import textwrap
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ itself, also when loaded from a test

from meshtools.views.front import echo_url  # noqa: E402
from meshtools.views.load import LoadConfig, LoadSummary, classify, run_load  # noqa: E402
from meshtools.shared.background import serving  # noqa: E402
from meshtools.shared.readiness import wait_until_ok  # noqa: E402
from meshtools.local.dev import DevLoop  # noqa: E402
from meshtools.local import envoy_config  # noqa: E402
from meshtools.local.mesh import APP_COMMAND, LocalMesh, trace_proxy_command  # noqa: E402
from meshtools.shared.net import free_layout, free_port  # noqa: E402
from meshtools.views.stats import nearest_rank  # noqa: E402
from meshtools.shared.topology import DEFAULT_REPLICAS, LOOPBACK, PROJECT_ROOT  # noqa: E402
from meshtools.views.trace_lookup import SPANS_PER_ECHO, find_trace  # noqa: E402
from meshtools.views.zipkin_client import ZipkinClient  # noqa: E402
from trace_proxy.settings import KEY_VARIABLES  # noqa: E402

import envoy_hop  # noqa: E402  (bench/ is this script's own directory)
import proxy_forwarding  # noqa: E402
import store_scale  # noqa: E402

TRACE_POLL = 0.02  # seconds between asks for the cold start's first trace
FIXED_SLOW = {"SLOW_STAGE_MIN_SECONDS": "0.5", "SLOW_STAGE_JITTER_SECONDS": "0"}
NO_SLOW = {"SLOW_STAGE_MIN_SECONDS": "0", "SLOW_STAGE_JITTER_SECONDS": "0"}
SCALING_LEVELS = (4, 8, 16)
RESULTS_FILE = PROJECT_ROOT / "docs" / "benchmark.md"
RESULTS_START = "<!-- benchmark figures: written by `inv bench --write` -->"
RESULTS_END = "<!-- end of benchmark figures -->"


SERVICE_FILE = PROJECT_ROOT / "service" / "__init__.py"


class Plan:
    """How long each measurement runs; --quick trades precision for time."""

    def __init__(self, quick: bool):
        self.per_worker = 3 if quick else 8  # scaling: requests per worker at each concurrency
        self.throughput_seconds = 3.0 if quick else 6.0
        self.hop_samples = 200 if quick else 600
        self.ingest_seconds = 3.0 if quick else 6.0
        self.dev_saves = 2 if quick else 5  # `inv dev`: saves of a service file, each timed to served
        self.store_sizes = (20_000,) if quick else (20_000, 1_000_000)  # issue 21: the goal is at 1 M


# -- machine ----------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def envoy_version() -> str:
    from meshtools.local.envoy_config import envoy_binary

    try:
        out = subprocess.run([envoy_binary(), "--version"], capture_output=True, text=True, timeout=30).stdout
    except Exception as exc:  # a missing Envoy is reported by the mesh itself
        return f"envoy unknown ({type(exc).__name__})"
    # ".../envoy  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL"
    found = re.search(r"version: \S+?/(\d+\.\d+\.\d+)/", out)
    return f"envoy {found.group(1)}" if found else "envoy (version unknown)"


def machine_line() -> str:
    cores = os.cpu_count() or 1
    line = (f"{cores} cores · {cpu_model()} · {platform.system()} {platform.release()} · "
            f"Python {platform.python_version()} · {envoy_version()}")
    if hasattr(os, "getloadavg"):
        # Other work on the machine shows up in every figure; say how busy it was.
        line += f" · load avg {os.getloadavg()[0]:.1f} at start"
    return line


# -- helpers ----------------------------------------------------------------------------


@contextmanager
def mesh(service_env: dict[str, str], state_dir: Path, replicas: int = DEFAULT_REPLICAS):
    m = LocalMesh(layout=free_layout(replicas), state_dir=state_dir, service_env=service_env)
    try:
        yield m
    finally:
        m.down()


def closed(url: str, concurrency: int, *, requests_n: int | None = None, duration: float | None = None,
           on_result=None) -> LoadSummary:
    return run_load(LoadConfig(url=url, concurrency=concurrency, requests=requests_n, duration=duration,
                               timeout=30.0), on_result=on_result)


def ok_rate(summary: LoadSummary) -> float:
    return (summary.completed - summary.error_count) / summary.elapsed if summary.elapsed else 0.0


class Failures:
    """The requests of one figure that failed, by kind ("timeout", "503"...), counted from any thread.

    A failed request must not vanish: the figure is computed from the others, and its line
    says how many that left out.
    """

    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()
        self.attempts = 0
        self._lock = threading.Lock()

    def record(self, status: int | None, exc: BaseException | None, expected: int) -> bool:
        """Count one request; True when it answered `expected`."""
        kind = classify(status, exc) or (None if status == expected else str(status))
        with self._lock:
            self.attempts += 1
            if kind:
                self.kinds[kind] += 1
        return kind is None

    def add_summary(self, summary: LoadSummary) -> None:
        with self._lock:
            self.attempts += summary.completed
            self.kinds.update(summary.errors)

    @property
    def count(self) -> int:
        return sum(self.kinds.values())

    def describe(self) -> str:
        kinds = ", ".join(f"{kind}: {n}" for kind, n in sorted(self.kinds.items()))
        return f"{self.count} of {self.attempts} requests failed ({kinds})"

    def note(self) -> str:
        """What to append to the figure's line: nothing when every request succeeded."""
        return f"; {self.describe()}" if self.count else ""


def gunicorn_app(env: dict[str, str], port: int, log: Path):
    return serving(APP_COMMAND, f"http://127.0.0.1:{port}/healthz", log=log, env={**os.environ, **env, "BIND": f"127.0.0.1:{port}"})


# -- figures ----------------------------------------------------------------------------


class Report:
    def __init__(self):
        self.lines: list[tuple[str, str]] = []
        self.problems: list[str] = []

    def add(self, label: str, text: str) -> None:
        self.lines.append((label, text))
        say(f"{label:<{LABEL_WIDTH}} {text}", indent=LABEL_WIDTH + 1)


LABEL_WIDTH = 28
LINE_WIDTH = 100  # a terminal, a CI log or `| tee`: no line of the report is wider


def say(text: str, indent: int = 2) -> None:
    """Print `text` wrapped at LINE_WIDTH, its continuation lines indented."""
    print(textwrap.fill(text, LINE_WIDTH, subsequent_indent=" " * indent, break_on_hyphens=False), flush=True)


def hop_figure(via: list[float], straight: list[float], samples: bool = True) -> str:
    """The sidecar's cost per hop (seconds in, milliseconds out): a signed difference, as measured."""
    p50 = (statistics.median(via) - statistics.median(straight)) * 1000
    p99 = (nearest_rank(via, 99) - nearest_rank(straight, 99)) * 1000
    return (f"p50 {p50:+.2f} ms · p99 {p99:+.2f} ms" + (
        f"   (direct p50 {statistics.median(straight) * 1000:.2f} ms, {len(via)} samples each)" if samples else ""))


MARKED = ("pod: {pod}</code></pre>", "pod: {{pod}} · bench save {n}</code></pre>")  # what a save changes


def save_to_served(m: LocalMesh, saves: int) -> tuple[list[float], list[float]]:
    """`inv dev` as a user meets it: each save changes the page service/__init__.py serves (a
    marker line, taken out again afterwards). Returns, per save, the seconds from the save (its
    mtime) to the first reply through front-envoy with the new page, and the seconds the
    watcher's own line reports (served again, every old worker gone)."""
    lines: list[str] = []
    stop = threading.Event()
    loop = DevLoop(m)
    watcher = threading.Thread(target=loop.watch, args=(lines.append, stop), daemon=True)
    original = SERVICE_FILE.read_bytes()
    if MARKED[0].encode() not in original:
        raise RuntimeError(f"{SERVICE_FILE.name} has no {MARKED[0]!r} to mark")
    new_code: list[float] = []
    watcher.start()
    try:
        with requests.Session() as session:
            wait_until_ok(f"{m.layout.front_url}/echo/bench", 30)
            time.sleep(1.0)  # the watcher's inotify watches are set up once it runs
            for n in range(saves):
                marker = f"bench save {n}"
                SERVICE_FILE.write_bytes(original.replace(MARKED[0].encode(), MARKED[1].format(n=n).encode()))
                saved = SERVICE_FILE.stat().st_mtime
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    if marker in session.get(f"{m.layout.front_url}/echo/bench", timeout=30).text:
                        new_code.append(time.time() - saved)
                        break
                    time.sleep(0.01)
                else:
                    raise RuntimeError("no request through front-envoy returned the new code within 60 s of a save")
                while len(lines) <= n and time.monotonic() < deadline:
                    time.sleep(0.05)
                if len(lines) <= n:
                    raise RuntimeError("inv dev reported nothing within 60 s of a save")
                # Every replica answers with the new page from now on.
                stale = [r for r in (session.get(f"{m.layout.front_url}/echo/bench", timeout=30).text
                                     for _ in range(3 * m.layout.replicas)) if marker not in r]
                if stale:
                    raise RuntimeError(f"{len(stale)} replies after inv dev's line still had the old page")
                time.sleep(1.0)  # a developer does not save twice within a second
    finally:
        SERVICE_FILE.write_bytes(original)
        stop.set()
        watcher.join(10)
    seconds = [re.search(r"served again (\d+\.\d) s", line) for line in lines]
    if not all(seconds):
        raise RuntimeError(f"inv dev did not serve the change: {lines[-1]}")
    return new_code, [float(found[1]) for found in seconds]


@dataclass
class ColdStart:
    """One `local.up`, in seconds from its start: every process answering, the first 200 (the
    request `up` sends then), that request's trace listed whole; CPU seconds the mesh's
    processes used until the 200 (the same work on any load: the wall figures are not)."""
    answering: float
    first_200: float
    traced: float
    cpu: float | None

    def describe(self, slow: str) -> str:
        cpu = f"; its processes used {self.cpu:.1f} CPU-s" if self.cpu is not None else ""
        return (f"{self.traced:.1f} s from local.up to the first traced 200: every process answering "
                f"{self.answering:.1f} s, the 200 {self.first_200:.1f} s ({slow}), its trace listed "
                f"{self.traced:.1f} s{cpu} (target ≤ 2 s)")


def cold_start(m: LocalMesh) -> ColdStart:
    """`m.up()`, timed (see ColdStart); counted once that request's trace is whole at the proxy."""
    started = time.monotonic()
    reply = m.up(timeout=120)
    first_200 = time.monotonic() - started
    cpu = mesh_cpu(m)
    # Asked every 20 ms: the figure is when the proxy lists the trace, not when a slower poll noticed.
    spans = find_trace(ZipkinClient(m.layout.trace_proxy_url), reply.headers["x-request-id"], timeout=30,
                       interval=TRACE_POLL)
    if len(spans) < SPANS_PER_ECHO:
        raise RuntimeError(f"the first trace had {len(spans)} of {SPANS_PER_ECHO} spans after 30 s")
    return ColdStart(answering=first_200 - reply.elapsed.total_seconds(), first_200=first_200,
                     traced=time.monotonic() - started, cpu=sum(cpu.values()) if cpu else None)


def tree_cpu(pid: int) -> float:
    """CPU seconds of `pid` and every process under it, the exited ones it waited for included."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    own = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime
    return own + sum(tree_cpu(int(kid)) for kid in kids)


def component(program: str) -> str:
    return "apps" if program.endswith("-app") else "trace proxy" if program == "trace-proxy" else "Envoys"


def mesh_cpu(m: LocalMesh) -> dict[str, float]:
    """CPU seconds so far of the mesh's apps, Envoys, trace proxy and supervisord ({} where /proc cannot say)."""
    if not Path("/proc/self/task").exists():
        return {}
    spent: dict[str, float] = {}
    if m.supervisord_pid():  # it carries every line the processes log, from their pipes to the files
        spent["supervisord"] = proxy_forwarding.cpu_seconds(m.supervisord_pid())
    for info in m._rpc().getAllProcessInfo():
        if info["pid"]:
            spent[component(info["name"])] = spent.get(component(info["name"]), 0.0) + tree_cpu(info["pid"])
    return spent


def quota_throughput(front: str, concurrency: int, per_worker: int, request_ids: list[str],
                     failures: Failures) -> float:
    """Successful req/s of `concurrency` clients that each send exactly `per_worker` requests back to back.

    A fixed quota per client, not a shared budget: with a shared one a client that got
    lucky takes an extra turn and the run lasts a whole slow request longer, which is noise
    of the size of the effect being measured.
    """
    barrier = threading.Barrier(concurrency + 1)
    ok = [0] * concurrency
    lock = threading.Lock()

    def client(n: int) -> None:
        with requests.Session() as session:
            barrier.wait()
            for _ in range(per_worker):
                try:
                    reply = session.get(echo_url(front, "scaling"), timeout=30)
                except requests.RequestException as exc:
                    failures.record(None, exc, 200)
                    continue
                if failures.record(reply.status_code, None, 200):
                    ok[n] += 1
                    with lock:
                        request_ids.append(reply.headers.get("x-request-id", ""))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(concurrency)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.monotonic()
    for t in threads:
        t.join()
    return sum(ok) / (time.monotonic() - started)


def scaling(front: str, plan: Plan, request_ids: list[str], failures: Failures) -> tuple[float, dict[int, float]]:
    """Throughput at c=1 and throughput_c / (c × throughput_1) for each level (none when c=1 got nothing)."""
    closed(front, 4, requests_n=8)  # warm up: connections, Python imports in the workers
    t1 = quota_throughput(front, 1, plan.per_worker, request_ids, failures)
    if not t1:
        return t1, {}
    ratios = {c: quota_throughput(front, c, plan.per_worker, request_ids, failures) / (c * t1)
              for c in SCALING_LEVELS}
    return t1, ratios


def completeness(trace_proxy: str, request_ids: list[str], timeout: float = 20.0) -> tuple[int, int]:
    """(traces whole, requests); every span is flushed within about a second, so `timeout` is ample."""
    client = ZipkinClient(trace_proxy)
    whole = 0
    deadline = time.monotonic() + timeout
    for rid in request_ids:
        spans = find_trace(client, rid, timeout=max(0.2, deadline - time.monotonic()))
        whole += len(spans) == SPANS_PER_ECHO and len({s["id"] for s in spans}) == SPANS_PER_ECHO
    return whole, len(request_ids)


ROUNDS = 3  # sidecar cost: the mesh and the apps direct take turns, so a change in load hits both


@dataclass
class SidecarCost:
    through: float  # successful req/s through the mesh
    direct: float  # the same two apps wired to each other without Envoy
    cpu_ms: dict[str, float]  # CPU ms per successful request through the mesh, by component
    direct_cpu_ms: float  # CPU ms per successful request of the apps direct


def sidecar_cost(m: LocalMesh, plan: Plan, tmp: Path, failures: Failures) -> SidecarCost:
    """req/s of /echo through the mesh vs the same two apps wired to each other without Envoy,
    in ROUNDS interleaved turns each, and what each component's CPU cost per request."""
    s2_port, s1_port = free_port(), free_port()
    env2 = {**NO_SLOW, "SERVICE_NAME": "2", "HOSTNAME": "direct-service2"}
    env1 = {**NO_SLOW, "SERVICE_NAME": "1", "HOSTNAME": "direct-service1", "EGRESS_URL": f"http://127.0.0.1:{s2_port}"}
    turn = plan.throughput_seconds / ROUNDS
    ok = {"mesh": 0, "direct": 0}
    elapsed = {"mesh": 0.0, "direct": 0.0}
    mesh_spent: dict[str, float] = {}
    direct_spent = 0.0
    with gunicorn_app(env2, s2_port, tmp / "direct-service2.log") as app2, \
            gunicorn_app(env1, s1_port, tmp / "direct-service1.log") as app1:
        direct = f"http://127.0.0.1:{s1_port}"
        closed(direct, 4, requests_n=8)
        closed(m.layout.front_url, 4, requests_n=8)
        for _ in range(ROUNDS):
            before = mesh_cpu(m)
            run = closed(m.layout.front_url, 8, duration=turn)
            for name, seconds in mesh_cpu(m).items():
                mesh_spent[name] = mesh_spent.get(name, 0.0) + seconds - before.get(name, 0.0)
            failures.add_summary(run)
            ok["mesh"] += run.completed - run.error_count
            elapsed["mesh"] += run.elapsed
            before_direct = tree_cpu(app1.pid) + tree_cpu(app2.pid)
            run = closed(direct, 8, duration=turn)
            direct_spent += tree_cpu(app1.pid) + tree_cpu(app2.pid) - before_direct
            failures.add_summary(run)
            ok["direct"] += run.completed - run.error_count
            elapsed["direct"] += run.elapsed
    return SidecarCost(
        through=ok["mesh"] / elapsed["mesh"] if elapsed["mesh"] else 0.0,
        direct=ok["direct"] / elapsed["direct"] if elapsed["direct"] else 0.0,
        cpu_ms={name: 1000 * seconds / max(ok["mesh"], 1) for name, seconds in mesh_spent.items()},
        direct_cpu_ms=1000 * direct_spent / max(ok["direct"], 1),
    )


@dataclass
class Hop:
    times: list[float]  # seconds per request, sequential
    cpu_ms: float | None = None  # the Envoy's CPU per request (None: the app direct, or no /proc)


def per_hop(m: LocalMesh, plan: Plan, tmp: Path) -> dict[str, Hop]:
    """Sequential /stage/0 requests straight to service2's app ("direct"), via its sidecar
    ("ours") and via each bench/envoy_hop.py variant of that sidecar, interleaved; with each
    Envoy's CPU over the loop (spans sent included) per request."""
    inst = m.layout.service2[0]
    config = envoy_config.local_path(inst, m.envoy_dir)
    sidecar = m._rpc().getProcessInfo(f"{inst.name}-envoy")["pid"]
    with envoy_hop.envoys(config, envoy_config.envoy_binary(), tmp) as variants:
        targets = {"direct": (f"http://{m.layout.host}:{inst.app_port}/stage/0", None),
                   "ours": (f"http://{m.layout.host}:{inst.ingress_port}/stage/0", sidecar), **variants}
        hops = {label: Hop([]) for label in targets}
        sessions = {label: requests.Session() for label in targets}
        try:
            for label, (url, _) in targets.items():  # warm the connections
                sessions[label].get(url, timeout=5)
            cpu_before = {label: tree_cpu(pid) for label, (_, pid) in targets.items() if pid}
            for _ in range(plan.hop_samples):
                for label, (url, _) in targets.items():
                    start = time.perf_counter()
                    sessions[label].get(url, timeout=5).raise_for_status()
                    hops[label].times.append(time.perf_counter() - start)
            time.sleep(0.3)  # the last spans sent (every 0.2 s)
            for label, before in cpu_before.items():
                spent = tree_cpu(targets[label][1]) - before
                hops[label].cpu_ms = 1000 * spent / plan.hop_samples if spent > 0 else None
        finally:
            for session in sessions.values():
                session.close()
    return hops


def span_batch(n: int = 100) -> bytes:
    trace = uuid.uuid4().hex[:16]
    now = int(time.time() * 1e6)
    spans = [{
        "traceId": trace, "id": f"{i + 1:016x}", "name": "stage-0", "kind": "SERVER",
        "timestamp": now + i, "duration": 1000, **({"parentId": f"{i:016x}"} if i else {}),
        "localEndpoint": {"serviceName": "bench", "ipv4": LOOPBACK},
        "tags": {"http.method": "GET", "http.url": "http://localhost:9000/stage/0", "http.status_code": "200",
                 "guid:x-request-id": trace, "upstream_cluster": "service2", "response_flags": "-"},
    } for i in range(n)]
    return json.dumps(spans).encode()


def ingest(plan: Plan, tmp: Path, failures: Failures) -> tuple[float, float | None, str]:
    """Spans/s a trace proxy pinned to one core accepts, in batches of 100; p99 POST latency (None: no answer)."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    note = ""
    if len(cores) >= 2:
        proxy_cores, client_cores = {cores[0]}, set(cores[1:])
    else:
        proxy_cores, client_cores = ({cores[0]} if cores else None), None
        note = " (the load client shared the core: this machine has only one)"
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    proxy_env = {k: v for k, v in os.environ.items() if k not in KEY_VARIABLES}
    with serving(trace_proxy_command(LOOPBACK, port), f"{url}/healthz", log=tmp / "ingest-trace-proxy.log",
                 cores=proxy_cores, env=proxy_env):
        saved = os.sched_getaffinity(0) if client_cores else None
        if client_cores:
            os.sched_setaffinity(0, client_cores)
        try:
            latencies: list[float] = []
            accepted = [0]
            lock = threading.Lock()
            stop = time.monotonic() + plan.ingest_seconds

            def client():
                with requests.Session() as s:
                    headers = {"content-type": "application/json"}
                    while time.monotonic() < stop:
                        body = span_batch()
                        start = time.perf_counter()
                        try:
                            reply = s.post(f"{url}/api/v2/spans", data=body, headers=headers, timeout=10)
                        except requests.RequestException as exc:
                            failures.record(None, exc, 202)
                            continue
                        took = time.perf_counter() - start
                        ok = failures.record(reply.status_code, None, 202)
                        with lock:
                            latencies.append(took)
                            accepted[0] += 100 if ok else 0

            threads = [threading.Thread(target=client) for _ in range(4)]
            started = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.monotonic() - started
        finally:
            if saved:
                os.sched_setaffinity(0, saved)
    return accepted[0] / elapsed, nearest_rank(latencies, 99), note


# -- main -------------------------------------------------------------------------------


FIGURES = ("cold", "scaling", "sidecar", "dev", "proxy")  # --only picks among these


def run(plan: Plan, report: Report, only: set[str] = set(FIGURES)) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="envoy-tracing-bench-"))
    try:
        request_ids: list[str] = []
        with mesh(FIXED_SLOW, tmp / "mesh-slow") as m:
            if "cold" not in only and "scaling" in only:
                m.up(timeout=120)
            elif "cold" in only:
                cold_figure(m, report, "cold start", "slow stage 0.5 s")
            if "scaling" in only:
                scaling_and_completeness(m, plan, report, request_ids)
        if only & {"cold", "sidecar", "dev"}:
            with mesh(NO_SLOW, tmp / "mesh-fast") as m:
                if "cold" in only:  # the same start without the seed's slow stage in its first request
                    cold_figure(m, report, "cold start (slow 0)", "slow stage 0")
                else:
                    m.up(timeout=120)
                if "sidecar" in only:
                    sidecar_figures(m, plan, report, tmp)
                if "dev" in only:
                    dev_figure(m, plan, report)
        if "sidecar" in only:
            # The same with one service1 replica: the processes of the apps direct, and Envoys.
            with mesh(NO_SLOW, tmp / "mesh-one", replicas=1) as m:
                m.up(timeout=120)
                cost_figures(m, plan, report, tmp, "sidecar cost (1 replica)", target=False)
        if "proxy" in only:
            proxy_figures(plan, report, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def cold_figure(m: LocalMesh, report: Report, label: str, slow: str) -> None:
    try:
        cold = cold_start(m)
    except Exception as exc:
        report.add(label, f"not measured: {exc}")
        raise
    report.add(label, cold.describe(slow))
    if cold.traced > 2.0:
        report.problems.append(f"{label} took {cold.traced:.1f} s (> 2 s)")


def scaling_and_completeness(m: LocalMesh, plan: Plan, report: Report, request_ids: list[str]) -> None:
    failed = Failures()
    t1, ratios = scaling(m.layout.front_url, plan, request_ids, failed)
    if not ratios:
        report.add("mesh scaling (slow 0.5 s)", f"not measured: no request at c=1 succeeded; {failed.describe()}")
        report.problems.append("mesh scaling was not measured")
    else:
        text = " · ".join(f"c={c} {r:.2f}" for c, r in ratios.items())
        report.add("mesh scaling (slow 0.5 s)", f"{text}   (ideal 1.00; c=1 {t1:.2f} req/s{failed.note()})")
        if ratios[8] < 0.9:
            report.problems.append(f"mesh scaling at concurrency 8 is {ratios[8]:.2f} (< 0.9)")
    whole, total = completeness(m.layout.trace_proxy_url, request_ids)
    share = 100 * whole / total if total else 0
    report.add("completeness", f"{share:.1f}% of {total} load-run requests arrived whole ({SPANS_PER_ECHO} spans)")
    if whole != total:
        report.problems.append(f"{total - whole} of {total} traces were incomplete")


def sidecar_figures(m: LocalMesh, plan: Plan, report: Report, tmp: Path) -> None:
    cost_figures(m, plan, report, tmp, "sidecar cost (slow 0)", target=True)
    hops = per_hop(m, plan, tmp)
    straight = hops.pop("direct").times
    for label, hop in hops.items():
        cpu = f" · its CPU {hop.cpu_ms:.2f} ms a request" if hop.cpu_ms is not None else ""
        if label == "ours":
            report.add("per-hop overhead /stage/0", f"ours {hop_figure(hop.times, straight)}{cpu} (target p50 ≤ 0.30 ms)")
        else:
            report.add(f"  {label}", f"{hop_figure(hop.times, straight, samples=False)}{cpu}")


def cost_figures(m: LocalMesh, plan: Plan, report: Report, tmp: Path, label: str, target: bool) -> None:
    """The sidecar cost line of `m` and its CPU per request; `target`: held to ≥ 0.85×."""
    failed = Failures()
    cost = sidecar_cost(m, plan, tmp, failed)
    ratio = cost.through / cost.direct if cost.direct else 0.0
    report.add(label,
               f"{cost.through:.1f} req/s through the mesh vs {cost.direct:.1f} req/s apps direct "
               f"({ratio:.2f}×, concurrency 8, {ROUNDS} interleaved turns each{failed.note()}"
               f"{'; target ≥ 0.85×' if target else ''})" if cost.direct
               else f"not measured: no request to the apps direct succeeded{failed.note()}")
    if cost.cpu_ms:
        parts = " + ".join(f"{name} {ms:.1f}" for name, ms in sorted(cost.cpu_ms.items()))
        report.add("  CPU per request",
                   f"through the mesh {sum(cost.cpu_ms.values()):.1f} ms ({parts}) vs apps direct "
                   f"{cost.direct_cpu_ms:.1f} ms, on {os.cpu_count()} cores shared by every process")
    if target and cost.direct and ratio < 0.85:
        report.problems.append(f"{label} {ratio:.2f}× (< 0.85×)")


def dev_figure(m: LocalMesh, plan: Plan, report: Report) -> None:
    new_code, served = save_to_served(m, plan.dev_saves)
    report.add("inv dev: save to served",
               f"median {statistics.median(new_code):.2f} s · max {max(new_code):.2f} s to the first reply "
               f"through front-envoy with the new code; every old worker gone: median "
               f"{statistics.median(served):.1f} s (inv dev's line), over {len(new_code)} saves of service/ "
               f"(target ≤ 1 s)")
    if statistics.median(new_code) > 1.0:
        report.problems.append(f"inv dev: save to served median {statistics.median(new_code):.2f} s (> 1 s)")


def proxy_figures(plan: Plan, report: Report, tmp: Path) -> None:
    if not hasattr(os, "sched_setaffinity"):
        report.add("trace proxy ingest", "not measured: this OS cannot pin a process to one core")
    else:
        failed = Failures()
        rate, p99, note = ingest(plan, tmp, failed)
        if p99 is None:
            report.add("trace proxy ingest", f"not measured: no POST was answered; {failed.describe()}")
            report.problems.append("trace proxy ingest was not measured")
        else:
            report.add("trace proxy ingest", f"{rate:,.0f} spans/s on one core, batches of 100, "
                                             f"p99 {p99 * 1000:.1f} ms{note}{failed.note()}")
        forwarding = proxy_forwarding.run(plan.ingest_seconds, ["json", "proto", "otlp"], False,
                                          os.environ.get("GO_PROXY"), report.add, with_files=True,
                                          otelcol_binary=os.environ.get("OTELCOL"))
        for size in plan.store_sizes:  # the store's queries as it grows (bench/store_scale.py)
            store_scale.run(size, 10, True, report.add)
        ours = forwarding.get("json")
        if ours and (ours.delivered_rate < proxy_forwarding.TARGET_SPANS or ours.lost):
            report.problems.append(f"forwarding delivered {ours.delivered_rate:,.0f} spans/s with {ours.lost} lost "
                                   f"(target {proxy_forwarding.TARGET_SPANS:,} with none lost)")
        if ours and ours.p50_ms is not None and (ours.p50_ms > proxy_forwarding.TARGET_P50_MS
                                                 or ours.p99_ms > proxy_forwarding.TARGET_P99_MS):
            report.problems.append(f"forwarding at {proxy_forwarding.FIXED_RATE} req/s: p50 {ours.p50_ms:.1f} ms, "
                                   f"p99 {ours.p99_ms:.1f} ms (target ≤ {proxy_forwarding.TARGET_P50_MS:g} / "
                                   f"≤ {proxy_forwarding.TARGET_P99_MS:g} ms)")


def write_markdown(header: str, report: Report, seconds: float) -> None:
    """Replace the figures between docs/benchmark.md's markers; the rest stays as it is."""
    text = RESULTS_FILE.read_text()
    start, end = text.find(RESULTS_START), text.find(RESULTS_END)
    if start < 0 or end < start:
        raise SystemExit(f"{RESULTS_FILE.name} has no {RESULTS_START} … {RESULTS_END} block to put the figures in.")
    rows = "\n".join(f"| {label} | {text.strip()} |" for label, text in report.lines)
    figures = (
        f"{RESULTS_START}\n"
        f"Machine: {header}  \nRun: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {seconds:.0f} s\n\n"
        "| figure | result |\n|---|---|\n" + rows + "\n"
    )
    RESULTS_FILE.write_text(text[:start] + figures + text[end:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (noisier figures)")
    parser.add_argument("--write", action="store_true", help=f"write the figures to {RESULTS_FILE.relative_to(PROJECT_ROOT)}")
    parser.add_argument("--only", default=",".join(FIGURES),
                        help=f"comma-separated figures to measure, of {','.join(FIGURES)} (default: all)")
    args = parser.parse_args(argv)
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    if not only or only - set(FIGURES):
        parser.error(f"--only takes some of {', '.join(FIGURES)}, got {args.only!r}")
    # The benchmark's spans stay on this machine, whatever the shell exports.
    for key in KEY_VARIABLES:
        os.environ.pop(key, None)
    started = time.monotonic()
    header = machine_line()
    say(f"envoy-tracing benchmark · {header}")
    report = Report()
    try:
        run(Plan(args.quick), report, only)
    except KeyboardInterrupt:
        print("interrupted; every process the benchmark started was stopped", file=sys.stderr)
        return 130
    except Exception as exc:
        print(f"the benchmark stopped: {exc}", file=sys.stderr)
        return 1
    seconds = time.monotonic() - started
    say(f"{'total':<{LABEL_WIDTH}} {seconds:.0f} s")
    for problem in report.problems:
        print(f"WARNING: {problem}", file=sys.stderr)
    if args.write:
        write_markdown(header, report, seconds)
        print(f"wrote {RESULTS_FILE.relative_to(PROJECT_ROOT)}")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
