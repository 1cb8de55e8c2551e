"""`inv demo`, the newcomer's first command (README's quick start), on a real local mesh."""
from __future__ import annotations

from meshtools.shared.net import free_layout
from tests.support.inv_process import run_inv


def test_demo_starts_the_mesh_shows_the_first_trace_and_can_run_again(tmp_path):
    layout = free_layout(replicas=1)
    # The demo has no port flags: invoke's config (here from the environment) moves the ports.
    ports = {"INVOKE_LOCAL_REPLICAS": "1", "INVOKE_LOCAL_FRONT_PORT": str(layout.front_port),
             "INVOKE_LOCAL_TRACE_PROXY_PORT": str(layout.trace_proxy_port),
             "INVOKE_LOCAL_OTLP_PORT": str(layout.otlp_port),
             "INVOKE_LOCAL_BASE_PORT": str(layout.base_port), "COLUMNS": "120"}
    try:
        first = run_inv("demo", state_dir=tmp_path, env=ports, timeout=180)
        again = run_inv("demo", state_dir=tmp_path, env=ports, timeout=180)
        other_tracer = run_inv("demo", "--tracer", "opentelemetry", state_dir=tmp_path, env=ports, timeout=60)
        more_replicas = run_inv("demo", "--replicas", "2", state_dir=tmp_path, env=ports, timeout=60)
    finally:
        down = run_inv("local.down", state_dir=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    out = first.stdout
    assert "GET /echo/friend → HTTP 200" in out and "GET /echo/chris → HTTP 500" in out
    assert "ERROR" in out  # the failure is said in words, not only in colour
    # The tree of the first request: 12 spans, service1-0 calling service2-0 five times.
    assert "12 spans" in out
    assert out.count("/stage/") == 10 and "◀ slowest" in out
    assert "inv local.down" in out
    # The web UI's address, with this trace's page on it.
    assert f"\n  {layout.trace_proxy_url}/trace/" in out and f"\n  {layout.trace_proxy_url}/\n" in out  # lines of their own
    assert again.returncode == 0 and "already up; reusing it" in again.stdout and "12 spans" in again.stdout
    # A running mesh that is not what was asked for is refused, not said to be reused.
    assert other_tracer.returncode == 1 and "reusing" not in other_tracer.stdout
    assert other_tracer.stderr.strip() == ("The running mesh uses the zipkin tracer: `inv local.down`, then "
                                           "`inv demo --tracer opentelemetry`.")
    assert more_replicas.returncode == 1 and "reusing" not in more_replicas.stdout
    assert more_replicas.stderr.strip() == ("The running mesh runs 1 service1 replica: `inv local.down`, then "
                                            "`inv demo --replicas 2`.")
    assert down.returncode == 0 and "stopped" in down.stdout
