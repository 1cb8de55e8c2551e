"""load, traces, bench: drive the mesh, look at its traces in the terminal, measure it.

Top-level tasks (tasks.py adds them with `ns.add_task`); the work is in meshtools.views.load,
meshtools.views.trace_view, meshtools.views.zipkin_client and bench/mesh.py.
"""
from __future__ import annotations

import json as jsonlib
import subprocess
import sys
import time
from datetime import datetime, timezone
from urllib.parse import urlsplit

from invoke import Exit, task
from rich.console import Console

from meshtools.cluster import kind
from meshtools.cluster import logs as cluster_logs
from meshtools.cluster import stack
from meshtools.local import logs as local_logs
from meshtools.views import load as loadgen
from meshtools.views import trace_view
from meshtools.shared.durations import SYNTAX as DURATION_SYNTAX
from meshtools.shared.net import accepts_connections
from meshtools.shared.signals import sigterm_as_interrupt
from meshtools.tasks import options
from meshtools.tasks.cli import MeshTask
from meshtools.tasks.options import FRONT_URL_HELP, TRACE_PROXY_URL_HELP
from meshtools.shared.topology import LOOPBACK, PROJECT_ROOT
from meshtools.views.trace_lookup import join_ids, trace_by_id_or_request_id, why_no_traces
from meshtools.views.urls import url_flag
from meshtools.views.zipkin_client import TraceProxyError, ZipkinClient

BENCH_SCRIPT = PROJECT_ROOT / "bench" / "mesh.py"
CLUSTER_BENCH_SCRIPT = PROJECT_ROOT / "bench" / "cluster_loop.py"
ANALYSIS_TRACES = 1000  # traces read for --breakdown / --heatmap unless --limit says otherwise
AVAILABLE_FIELDS_SHOWN = 12
HEATMAP_WINDOW_S = 300  # --heatmap without --lookback: the spans of the 5 minutes up to the newest


def listening(url: str) -> bool:
    """Whether something accepts connections at the URL's host and port (no request: no trace)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return accepts_connections(parts.hostname or LOOPBACK, port, timeout=2.0)


@task(
    klass=MeshTask,
    metavars={"duration": "DURATION", "requests": "N", "concurrency": "N", "rate": "PER_SECOND",
              "timeout": "DURATION", "url": "URL", "names": "NAMES"},
    help={
        "url": FRONT_URL_HELP,
        "names": "comma separated names to cycle through in /echo/NAME (default earth,fire,wind,water)",
        "duration": f"how long to run: {DURATION_SYNTAX} (default 10 s when --requests is not given)",
        "requests": "stop after this many requests",
        "concurrency": "closed model: workers, each waiting for its answer (default 4); with --rate: most requests in flight (default 64)",
        "rate": "open model: requests per second at a constant pace; latency counts from each intended send time",
        "timeout": f"how long to wait for one answer: {DURATION_SYNTAX} (default {loadgen.DEFAULT_TIMEOUT:g} s)",
        "json": "print the summary as JSON (the live line goes to stderr)",
        "fail_on_errors": "exit 1 when any request failed: an HTTP error, no answer, or unanswered at the end (for CI)",
    }
)
def load(c, url=None, names=None, duration=None, requests=None, concurrency=None, rate=None, timeout=None, json=False,
         fail_on_errors=False):
    """Send /echo/NAME load; summarise its latency and errors.

    Latency percentiles are of answered requests; requests with no answer are counted apart.
    Ctrl-C or SIGTERM stops it early, still with the summary (exit 130).
    """
    try:
        config = loadgen.LoadConfig(
            url=options.front_url(c, url),
            names=loadgen.parse_names(names) if names is not None else loadgen.DEFAULT_NAMES,
            # Parsed here, their limits checked by LoadConfig, which tests and the benchmark share.
            duration=options.duration(duration, "--duration"),
            requests=options.whole_number(requests, "--requests"),
            concurrency=options.whole_number(concurrency, "--concurrency"),
            rate=options.number(rate, "--rate"),
            timeout=loadgen.DEFAULT_TIMEOUT if timeout is None else options.duration(timeout, "--timeout"),
        )
    except ValueError as exc:
        raise Exit(str(exc))
    if not listening(config.url):
        raise Exit(f"Nothing listens at {config.url}; start the mesh with `inv local.up` "
                   "(or `inv forward` for the cluster) or pass --url.")
    out = Console()
    run = loadgen.LoadRun(config)
    with sigterm_as_interrupt():  # `kill` and `timeout` get the summary, as Ctrl-C does
        summary = loadgen.live_progress(Console(stderr=True))(run)
    if json:
        print(jsonlib.dumps(summary.to_dict(), indent=2))
    else:
        loadgen.render_summary(summary, out)
    if summary.in_flight_abandoned and not summary.interrupted:
        # Exiting now would cut them off, and their traces would read as errors. Through rich,
        # so 80 columns wrap the line at a word.
        Console(stderr=True).print(f"Letting the {loadgen.plural(summary.in_flight_abandoned, 'request')} still in "
                                   "flight finish so their traces end cleanly; Ctrl-C skips.", highlight=False)
        with sigterm_as_interrupt():
            try:
                run.drain(config.timeout)
            except KeyboardInterrupt:
                pass
    if summary.completed and summary.errors.get("connection error", 0) == summary.completed:
        raise Exit(f"No request reached {config.url}; is the mesh still up (`inv local.status`)?")
    if summary.interrupted:
        raise Exit(code=130)
    if fail_on_errors and (failed := loadgen.failures(summary)):
        raise Exit(f"{failed} of {summary.sent} requests failed (--fail-on-errors).")


@task(
    klass=MeshTask,
    metavars={"limit": "N", "lookback": "DURATION", "url": "URL", "id": "ID", "breakdown": "FIELDS",
              "service": "NAME"},
    help={
        "url": TRACE_PROXY_URL_HELP,
        "id": "show this trace instead of the latest: a hex trace id, or the x-request-id `inv echo` printed",
        "limit": f"list the latest N traces, one line each; with --breakdown/--heatmap, how many traces to read (default {ANALYSIS_TRACES})",
        "breakdown": "group spans by these comma separated fields or tags (e.g. serviceName,http.url): count, errors, p50/p95/p99 durationMs",
        "heatmap": "plot durationMs over time as a terminal heatmap (the 5 minutes up to the newest trace, unless --lookback)",
        "service": "only spans of this service (localEndpoint.serviceName, e.g. service2-0)",
        "lookback": f"only traces from this far back: {DURATION_SYNTAX}",
        "logs": "with --id: print the request's log lines from every process under the waterfall",
    }
)
def traces(c, url=None, id=None, limit=None, breakdown=None, heatmap=False, service=None, lookback=None,
           logs=False):
    """Show traces: the latest, a list, a breakdown or a heatmap.

    The traces come from the trace proxy's Zipkin API.
    """
    client = ZipkinClient(url_flag(options.trace_proxy_url(c, url)))
    limit = options.whole_number(limit, "--limit", minimum=1)
    lookback_s = options.positive_duration(lookback, "--lookback")
    if id is not None and not id.strip():
        raise Exit("--id needs a trace id or an x-request-id; `inv traces --limit 10` lists recent traces.")
    if service is not None and not service.strip():
        raise Exit("--service needs a service name, e.g. --service service2-0.")
    query = {"service_name": service, "lookback_ms": round(lookback_s * 1000) if lookback_s else None}
    fields = [f.strip() for f in (breakdown or "").split(",") if f.strip()]
    if breakdown is not None and not fields:
        raise Exit("--breakdown needs field names, e.g. --breakdown serviceName,http.url.")
    if logs and id is None:
        raise Exit("--logs shows one request's log lines: give its --id (the x-request-id `inv echo` printed).")
    console = trace_view.terminal_console()
    try:
        if id is not None:
            spans = trace_by_id_or_request_id(client, id.strip(), on_wait=lambda: print(
                "Not listed yet; waiting for its spans to reach the trace proxy …", file=sys.stderr, flush=True))
            trace_view.render_trace(spans, console)
            if logs:
                print_request_logs(c, spans, console)
            return
        if fields or heatmap:
            found = client.traces(limit=limit or ANALYSIS_TRACES, **query)
            spans = [s for t in found for s in t if not service or trace_view.service_of(s) == service]
            if not spans:
                raise Exit(why_no_traces(client, service, lookback_s))
            missing = trace_view.missing_fields(spans, fields)
            if fields and missing:
                known = trace_view.available_fields(spans)
                more = ", …" if len(known) > AVAILABLE_FIELDS_SHOWN else ""
                raise Exit(f"No span has {', '.join(missing)}; fields and tags they have include "
                           f"{', '.join(known[:AVAILABLE_FIELDS_SHOWN])}{more}.")
            console.print(f"{len(spans)} spans from {len(found)} traces")
            if fields:
                trace_view.render_breakdown(trace_view.breakdown(spans, fields), fields, console)
            if heatmap:
                if lookback_s is None:
                    spans = trace_view.recent_spans(spans, HEATMAP_WINDOW_S)
                    console.print(f"heatmap: the {len(spans)} spans of the {HEATMAP_WINDOW_S // 60} minutes up to "
                                  "the newest (--lookback picks another window)")
                trace_view.render_heatmap(trace_view.heatmap(spans, trace_view.heatmap_columns(console)), console)
            return
        found = client.traces(limit=limit or 1, **query)
        if not found:
            raise Exit(why_no_traces(client, service, lookback_s))
        if limit:
            trace_view.render_trace_list(found, console)
        else:
            trace_view.render_trace(found[0], console)
    except TraceProxyError as exc:
        raise Exit(str(exc))


LOG_FLUSH_SECONDS = 1.0  # Envoy writes its access log out every 0.5 s (--file-flush-interval-msec)


def print_request_logs(c, spans: list[dict], console) -> None:
    """The log lines of the trace's request(s), from the local mesh if it runs, else the kind cluster."""
    ids = join_ids(spans)
    ends = [(s.get("timestamp", 0) + s.get("duration", 0)) / 1e6 for s in spans]
    wait = max(ends, default=0) + LOG_FLUSH_SECONDS - time.time()
    if 0 < wait <= LOG_FLUSH_SECONDS:
        time.sleep(wait)  # a trace this fresh may still have lines in Envoy's buffer
    console.print("\nlog lines of this request (`inv logs --request ID` prints them alone):")
    lines: list[str] = []
    mesh = options.running_mesh(c)
    if mesh is not None:
        try:
            chosen = local_logs.select(mesh.logs_dir, [])
        except local_logs.LogsError as exc:
            raise Exit(str(exc)) from None
        width = local_logs.prefix_width(chosen)
        lines = [local_logs.format_line(line, width) for line in local_logs.merged(mesh.logs_dir, chosen, ids=ids)]
    else:
        starts = [s["timestamp"] / 1e6 for s in spans if s.get("timestamp")]
        since = datetime.fromtimestamp(min(starts) - 60, timezone.utc) if starts else None
        kind.require_tools("kubectl")
        code = cluster_logs.show(stack.open_target(options.target_from(c)), [], since, False, ids, lines.append)
        if code:
            raise Exit(f"kubectl logs failed (exit {code}); is the cluster up (`inv cluster.status`)?", code=code)
    for line in lines:
        console.print(line, markup=False, highlight=False, emoji=False, soft_wrap=True)
    if not lines:
        console.print("(none: the processes that served it have no lines left that mention it)")


@task(
    klass=MeshTask,
    help={
        "quick": "shorter runs (for a smoke test; the figures get noisier)",
        "write": "also write the figures to docs/benchmark.md",
        "only": "measure only these figures, comma separated: cold, scaling, sidecar, dev, proxy (default: all)",
        "cluster": "measure `inv dev --cluster`'s save → served on the running kind cluster instead",
        "name": options.NAME_HELP,
    },
    metavars={"only": "FIGURE,…"},
)
def bench(c, quick=False, write=False, only=None, cluster=False, name=None):
    """Benchmark the local mesh; --write saves the figures.

    Measures cold start, scaling, sidecar and hop cost, ingest and completeness;
    --write puts the figures in docs/benchmark.md. With --cluster: the inner
    loop on the kind cluster (live update and build + deploy, save → served).
    """
    if cluster:
        if write or only:
            raise Exit("--write and --only are for the local mesh's figures; --cluster takes --quick and --name.")
        args = [sys.executable, str(CLUSTER_BENCH_SCRIPT), "--name", options.cluster_name(c, name)]
        args += ["--saves", "2", "--no-rebuild"] if quick else []
    else:
        args = [sys.executable, str(BENCH_SCRIPT)]
        args += ["--quick"] if quick else []
        args += ["--write"] if write else []
        args += ["--only", only] if only else []
    # The script owns a whole local mesh on its own ports; it runs as its own process so a
    # Ctrl-C or a crash there cannot leave this one in a strange state.
    result = subprocess.run(args, cwd=PROJECT_ROOT)
    if result.returncode:
        raise Exit(code=result.returncode)
