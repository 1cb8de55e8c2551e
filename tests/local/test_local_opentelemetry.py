"""The local mesh with `--tracer opentelemetry`: every Envoy exports OTLP/HTTP to the trace
proxy, W3C traceparent carries the context, and the trace looks as it does with Zipkin (the
same assertions, tests/support/trace_assertions.py); the spans reach Honeycomb too."""
from __future__ import annotations

import pytest

from meshtools.shared.topology import FRONT, SERVICE1, SERVICE2
from meshtools.shared.tracers import OPENTELEMETRY
from meshtools.views.front import echo
from meshtools.views.trace_lookup import SPANS_PER_ECHO, find_trace
from meshtools.views.zipkin_client import ZipkinClient
from tests.conftest import running_mesh
from tests.support.honeycomb_standin import honeycomb_standin
from tests.support.trace_assertions import assert_echo_trace, assert_error_trace, assert_spans_come_from

KEY = "hcaik_otel-local-test-key-0123456789"


@pytest.fixture(scope="module")
def otel_mesh(tmp_path_factory):
    with honeycomb_standin() as honeycomb, pytest.MonkeyPatch.context() as env:
        env.setenv("HONEYCOMB_API_KEY", KEY)
        env.setenv("HONEYCOMB_API_HOST", honeycomb.url)
        env.setenv("HONEYCOMB_DATASET", "envoy-otel-test")
        with running_mesh(tmp_path_factory.mktemp("otel-mesh"), replicas=2, tracer=OPENTELEMETRY) as mesh:
            yield mesh, honeycomb


def test_echo_friend_makes_the_same_twelve_span_trace_through_otlp(otel_mesh):
    mesh, _ = otel_mesh
    assert mesh.tracer == OPENTELEMETRY
    assert "envoy.tracers.opentelemetry" in (mesh.envoy_dir / "front-envoy.yaml").read_text()
    reply = echo(mesh.layout.front_url, "friend")
    assert reply.status == 200 and "Hello friend!" in reply.body
    spans = find_trace(ZipkinClient(mesh.layout.trace_proxy_url), reply.request_id)
    assert_echo_trace(spans, reply.request_id, front="front-envoy", service1="service1-", service2="service2-")
    layout = mesh.layout
    assert_spans_come_from(spans, {FRONT: {layout.front.name}, SERVICE1: {i.name for i in layout.service1},
                                   SERVICE2: {i.name for i in layout.service2}})
    # They came as OTLP: Envoy's OpenTelemetry tracer names itself as the scope and sets a status.
    assert {s["tags"]["otel.scope.name"] for s in spans} == {"envoy"}
    assert all(len(s["traceId"]) == 32 for s in spans), "W3C trace ids are 128-bit"


def test_chris_shows_its_error_in_the_opentelemetry_trace(otel_mesh):
    mesh, _ = otel_mesh
    reply = echo(mesh.layout.front_url, "chris")
    assert reply.status == 500
    spans = find_trace(ZipkinClient(mesh.layout.trace_proxy_url), reply.request_id, spans=2)
    assert_error_trace(spans, reply.request_id, status=500)
    (root,) = [s for s in spans if not s.get("parentId")]
    assert root["tags"]["otel.status_code"] == "ERROR"


def test_opentelemetry_spans_reach_honeycomb_with_the_users_key(otel_mesh):
    mesh, honeycomb = otel_mesh
    reply = echo(mesh.layout.front_url, "honeycomb")
    spans = find_trace(ZipkinClient(mesh.layout.trace_proxy_url), reply.request_id)
    trace_id = spans[0]["traceId"]
    batches = honeycomb.wait_for_trace(trace_id, SPANS_PER_ECHO, timeout=20)
    events = [e["data"] for b in batches for e in b.events if e["data"].get("traceId") == trace_id]
    assert sorted(e["id"] for e in events) == sorted(s["id"] for s in spans)
    assert {b.dataset for b in batches} == {"envoy-otel-test"}
    assert {b.headers["X-Honeycomb-Team"] for b in batches} == {KEY}
    # The seed's queries work unchanged: serviceName to break down by, durationMs for the heatmap.
    assert {e["serviceName"] for e in events} >= {"front-envoy", "service2-0"}
    assert all(e["durationMs"] > 0 and e["telemetry.sdk.name"] == "envoy" for e in events)


def test_demo_on_the_running_mesh_with_the_other_tracer_says_how_to_switch(otel_mesh):
    from tests.support.inv_process import run_inv

    mesh, _ = otel_mesh
    result = run_inv("demo", "--tracer", "zipkin", state_dir=mesh.state_dir)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "uses the opentelemetry tracer: `inv local.down`, then `inv demo --tracer zipkin`." in result.stderr
    status = run_inv("local.status", state_dir=mesh.state_dir)
    assert status.returncode == 0 and "opentelemetry tracer" in status.stdout
