"""The benchmark's measurements, each run briefly (the full `python bench/mesh.py` takes about a minute).

The scaling and sidecar figures need meshes with their own slow-stage settings, so only the
pieces that work on the session mesh or on their own run here.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from meshtools.shared.net import free_port
from meshtools.shared.topology import PROJECT_ROOT


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_mesh", PROJECT_ROOT / "bench" / "mesh.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as an import would: its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def plan(bench):
    plan = bench.Plan(quick=True)
    plan.hop_samples = 30
    plan.ingest_seconds = 1.0
    return plan


def test_header_names_the_machine(bench):
    line = bench.machine_line()
    assert line.startswith(f"{os.cpu_count()} cores · {bench.cpu_model()}")
    assert "envoy 1." in line


def test_completeness_finds_each_request_trace_whole_by_its_request_id(bench, local_mesh):
    ids = [requests.get(f"{local_mesh.layout.front_url}/echo/bench{i}", timeout=30).headers["x-request-id"]
           for i in range(3)]
    assert bench.completeness(local_mesh.layout.trace_proxy_url, ids) == (3, 3)
    assert bench.completeness(local_mesh.layout.trace_proxy_url, ["no-such-request"], timeout=0.5) == (0, 1)


def test_per_hop_overhead_measures_the_sidecar_envoy_alone_and_the_app_alike(bench, local_mesh, plan, tmp_path):
    plan.hop_samples = 200  # enough requests for each Envoy's CPU to span several clock ticks
    hops = bench.per_hop(local_mesh, plan, tmp_path)
    assert list(hops) == ["direct", "ours", *bench.envoy_hop.VARIANTS]
    assert all(len(hop.times) == plan.hop_samples for hop in hops.values())
    assert all(0 < t < 1 for hop in hops.values() for t in hop.times)
    assert hops["direct"].cpu_ms is None  # the app's CPU is not an Envoy's
    assert all(0 < hop.cpu_ms < 50 for label, hop in hops.items() if label != "direct")


def test_envoy_alone_is_our_sidecar_without_its_access_log_and_tracing(bench):
    import yaml

    from meshtools.local import envoy_config
    from meshtools.shared.net import free_layout

    layout = free_layout(replicas=1)
    ours = envoy_config.render_local(layout.service2[0], layout, "zipkin")
    alone = bench.envoy_hop.variant(ours, bench.envoy_hop.VARIANTS["Envoy alone (router only)"], 1234, 1235)
    hcm = alone["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert "access_log" not in hcm and "tracing" not in hcm and hcm["http_filters"]
    assert alone["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] == 1234
    assert alone["admin"]["address"]["socket_address"]["port_value"] == 1235
    assert alone["static_resources"]["clusters"] == ours["static_resources"]["clusters"]  # the same upstream
    ours_hcm = ours["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert "access_log" in ours_hcm and "tracing" in ours_hcm  # the original is left as it was
    assert yaml.safe_dump(alone)


def test_mesh_cpu_splits_the_processes_cpu_by_component(bench, local_mesh):
    spent = bench.mesh_cpu(local_mesh)
    assert set(spent) == {"apps", "Envoys", "trace proxy", "supervisord"}
    assert all(seconds > 0 for seconds in spent.values())


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU pinning (Linux)")
def test_trace_proxy_ingest_counts_accepted_spans_on_one_core(bench, plan, tmp_path):
    before = os.sched_getaffinity(0)
    failed = bench.Failures()
    rate, p99, note = bench.ingest(plan, tmp_path, failed)
    assert rate > 500  # spans/s; a real proxy does thousands
    assert 0 < p99 < 5
    assert failed.attempts > 0 and failed.count == 0, failed.describe()
    assert os.sched_getaffinity(0) == before  # the client's pinning is undone


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU pinning (Linux)")
@pytest.mark.parametrize("encoding", ["json", "proto", "otlp"])
def test_forwarding_figures_count_every_span_delivered_to_the_standin(bench, tmp_path, encoding):
    forwarding = bench.proxy_forwarding
    lines = []
    results = forwarding.run(1.0, [encoding], False, None, lambda label, text: lines.append((label, text)))
    figures = results[encoding]
    assert figures.accepted > 0 and figures.delivered == figures.accepted and figures.lost == 0
    assert figures.failed_requests == 0 and figures.fixed_lost == 0
    assert 0 < figures.p50_ms <= figures.p99_ms and figures.peak_rss_mb > 10 and figures.cpu_us_per_span > 0
    assert [label for label, _ in lines] == [f"proxy → Honeycomb ({encoding})", "  at 40 req/s × 100"]
    assert "none lost" in lines[0][1]


def test_write_keeps_the_figures_and_the_machine(bench, tmp_path, monkeypatch):
    target = tmp_path / "README.md"
    target.write_text(f"# Project\n\n## Benchmark\n\n{bench.RESULTS_START}\nold figures\n{bench.RESULTS_END}\n\n## Next\n")
    monkeypatch.setattr(bench, "RESULTS_FILE", target)
    report = bench.Report()
    report.add("cold start", "4.6 s from local.up to the first traced 200")
    bench.write_markdown("2 cores · Some CPU", report, 64)
    text = target.read_text()
    assert "Machine: 2 cores · Some CPU" in text
    assert "| cold start | 4.6 s from local.up to the first traced 200 |" in text
    assert "old figures" not in text and text.startswith("# Project") and text.endswith("## Next\n")


class EveryThirdFails(BaseHTTPRequestHandler):
    """A fake front: every third request gets a 503, every fifth connection is cut without an answer."""

    served = 0
    lock = threading.Lock()

    def do_GET(self):
        with self.lock:
            EveryThirdFails.served += 1
            n = EveryThirdFails.served
        if n % 5 == 0:
            self.close_connection = True
            self.connection.shutdown(2)  # no status line at all: a requests exception
            return
        status = 503 if n % 3 == 0 else 200
        self.send_response(status)
        self.send_header("content-length", "0")
        self.send_header("x-request-id", f"req-{n}")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_failed_requests_are_counted_on_the_figure_not_lost_fake_front(bench, capfd):
    server = ThreadingHTTPServer(("127.0.0.1", 0), EveryThirdFails)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        failed, ids = bench.Failures(), []
        rate = bench.quota_throughput(f"http://127.0.0.1:{server.server_address[1]}", 3, 10, ids, failed)
    finally:
        server.shutdown()
        server.server_close()
    assert failed.attempts == 30 and failed.count == 30 - len(ids) > 0
    assert set(failed.kinds) == {"503", "connection error"}
    assert rate > 0
    assert failed.note().startswith(f"; {failed.count} of 30 requests failed (")
    assert "Traceback" not in capfd.readouterr().err  # no client thread died


def test_a_figure_with_no_answer_at_all_says_why_fake_closed_port(bench):
    failed = bench.Failures()
    assert bench.quota_throughput(f"http://127.0.0.1:{free_port()}", 2, 2, [], failed) == 0
    assert failed.describe() == "4 of 4 requests failed (connection error: 4)"


def test_bench_p99_is_the_nearest_rank_one_breakdown_uses(bench):
    values = [float(v) for v in range(1, 301)]
    assert bench.nearest_rank(values[::-1], 99) == 297.0  # ceil(0.99 × 300) = 297th smallest


def test_report_lines_fit_100_columns_and_signs_read_plainly(bench, capsys):
    # `inv bench` lines reached 127 columns, and a faster p99 read "p99 +-0.17 ms".
    report = bench.Report()
    report.add("sidecar cost (slow 0)", "140.8 req/s through the mesh vs 178.4 req/s apps direct (0.79×, "
               "concurrency 8); 3 of 1200 requests failed (connection error: 2, timeout: 1)")
    bench.say("envoy-tracing benchmark · " + "2 cores · AMD EPYC · Linux 6.18.44-fc-v595 · " * 3)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) > 2 and all(len(line) <= 100 for line in lines)
    assert lines[1].startswith(" " * 29)  # a figure's continuation stays in its column
    # Noise can make the hop through Envoy look faster at the tail: a minus sign, not "+-".
    assert bench.hop_figure([0.0010, 0.0020], [0.0011, 0.0022]).startswith("p50 -0.15 ms · p99 -0.20 ms")


def test_save_to_served_times_inv_dev_until_the_new_code_answers_and_restores_the_source(bench, local_mesh):
    source = bench.SERVICE_FILE.read_bytes()
    (new_code,), (every_old_worker_gone,) = bench.save_to_served(local_mesh, 1)
    assert 0 < new_code < 30 and 0 < every_old_worker_gone < 30
    assert bench.SERVICE_FILE.read_bytes() == source  # the marker line is taken out again


def test_the_otlp_bodies_carry_the_same_spans_as_the_zipkin_ones(bench):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from trace_proxy.ingest.otlp_spans import convert

    spans = bench.proxy_forwarding.span_batch(10)
    body, ctype = bench.proxy_forwarding.encode(spans, "otlp")
    assert ctype == "application/x-protobuf" and bench.proxy_forwarding.endpoint("otlp") == "/v1/traces"
    converted = {s.v2["id"]: s.v2 for s in convert(ExportTraceServiceRequest.FromString(body)).spans}
    fields = ("traceId", "parentId", "name", "kind", "timestamp", "duration", "tags")
    assert [{k: converted[s["id"]].get(k) for k in fields} | {"service": converted[s["id"]]["localEndpoint"]["serviceName"]}
            for s in spans] == [{k: s.get(k) for k in fields} | {"service": s["localEndpoint"]["serviceName"]}
                                for s in spans]


def test_the_standin_counts_an_otlp_export_as_honeycomb_does(bench):
    """The Collector's otlphttp exporter posts gzipped OTLP to /v1/traces: every span is an
    accepted event, and each span event and link one more, as Honeycomb makes them."""
    import gzip

    import otlp_batch
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.trace.v1.trace_pb2 import Span
    from tests.support.honeycomb_standin import honeycomb_standin

    request = ExportTraceServiceRequest.FromString(otlp_batch.from_spans(bench.proxy_forwarding.span_batch(10)))
    request.resource_spans[0].scope_spans[0].spans[0].events.append(Span.Event(name="retry"))
    headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
    with honeycomb_standin(keep_events=False) as standin:
        reply = requests.post(f"{standin.url}/v1/traces", data=gzip.compress(request.SerializeToString()),
                              headers=headers, timeout=5)
        assert reply.status_code == 200
        assert requests.post(f"{standin.url}/v1/traces", data=b"\xff", headers=headers, timeout=5).status_code == 400
        assert standin.stats()["accepted"] == 11


def test_the_collector_manifest_names_its_components_at_one_version():
    spec = importlib.util.spec_from_file_location("collector_peer", PROJECT_ROOT / "bench" / "collector_peer.py")
    peer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peer)
    import yaml

    manifest = yaml.safe_load(peer.manifest("/tmp/otelcol"))
    modules = {kind: [m["gomod"].split() for m in manifest[kind]] for kind in ("receivers", "processors", "exporters")}
    assert {name.rsplit("/", 1)[1] for entries in modules.values() for name, _ in entries} == {
        "zipkinreceiver", "otlpreceiver", "batchprocessor", "otlphttpexporter"}
    assert {version for entries in modules.values() for _, version in entries} == {peer.OTELCOL_VERSION}
    config = yaml.safe_load(peer.config("127.0.0.1", 9411, 4318, "http://127.0.0.1:1", "bench"))
    assert config["exporters"]["otlphttp"]["headers"]["x-honeycomb-team"] == "${env:HONEYCOMB_API_KEY}"


@pytest.mark.skipif(not os.environ.get("OTELCOL"), reason="OTELCOL names no OpenTelemetry Collector binary")
def test_the_collector_delivers_every_span_beside_ours(bench, tmp_path):
    lines = []
    results = bench.proxy_forwarding.run(1.0, ["json"], False, None, lambda label, text: lines.append((label, text)),
                                         otelcol_binary=os.environ["OTELCOL"])
    peer = results["otelcol"]
    assert peer.accepted > 0 and peer.delivered == peer.accepted and peer.fixed_lost == 0
    assert [label for label, _ in lines][-1] == "  ours / Collector"


def test_only_cold_measures_both_cold_start_lines(bench, plan, monkeypatch):
    # `--only cold` is how the cold start is measured alone: with and without the slow stage.
    started, measured = [], []

    class FakeMesh:
        def up(self, timeout):
            started.append(timeout)

    @contextlib.contextmanager
    def fake_mesh(service_env, state_dir, replicas=bench.DEFAULT_REPLICAS):
        yield FakeMesh()

    monkeypatch.setattr(bench, "mesh", fake_mesh)
    monkeypatch.setattr(bench, "cold_figure", lambda m, report, label, slow: measured.append((label, slow)))
    bench.run(plan, bench.Report(), {"cold"})
    assert measured == [("cold start", "slow stage 0.5 s"), ("cold start (slow 0)", "slow stage 0")]
    assert started == []  # each mesh was started by its cold start, nothing else ran
