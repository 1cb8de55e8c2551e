"""What a new user stumbled on (issue 16), each as they met it, on a real mesh with moved ports.

The session's mesh runs on free ports, never 8000 and 9411: exactly the situation of
`inv local.up --front-port 8100 --trace-proxy-port 9500` followed by the hint it prints.
"""
from __future__ import annotations

import re

import pytest

from meshtools.shared.topology import FRONT_LOCAL_PORT, TRACE_PROXY_PORT
from meshtools.views.zipkin_client import ZipkinClient
from tests.support.inv_process import run_inv
from tests.support.waiting import wait_for

MAX_PIPED_COLUMNS = 80


def inv(mesh, *args):
    return run_inv(*args, state_dir=mesh.state_dir, env={"COLUMNS": ""}, timeout=120)


def test_the_mesh_runs_on_moved_ports(local_mesh):
    assert local_mesh.layout.front_port != FRONT_LOCAL_PORT
    assert local_mesh.layout.trace_proxy_port != TRACE_PROXY_PORT


def test_echo_load_and_traces_find_the_running_mesh_without_url(local_mesh):
    echo = inv(local_mesh, "echo", "--name", "friend")
    assert echo.returncode == 0, echo.stderr
    request_id = re.search(r"x-request-id (\S+)", echo.stdout)[1]
    traces = inv(local_mesh, "traces", "--id", request_id)
    assert traces.returncode == 0 and "/echo/friend" in traces.stdout, traces.stderr
    load = inv(local_mesh, "load", "--requests", "2")
    assert load.returncode == 0, load.stderr
    assert local_mesh.layout.front_url in load.stdout and "2 requests in" in load.stdout


def test_traces_id_right_after_echo_finds_the_trace_every_time(local_mesh):
    # It gave up in 3 of 11 tries while the spans still sat in Envoy's buffer (flushed every 0.5 s then).
    for attempt in range(5):
        echo = inv(local_mesh, "echo", "--name", f"again{attempt}")
        request_id = re.search(r"x-request-id (\S+)", echo.stdout)[1]
        traces = inv(local_mesh, "traces", "--id", request_id)
        assert traces.returncode == 0, f"try {attempt + 1}: {traces.stderr}"
        assert f"/echo/again{attempt}" in traces.stdout and "12 spans" in traces.stdout


def test_the_start_up_request_leaves_no_error_trace(local_mesh):
    # Every fresh mesh began with two ERROR 503 traces of /echo/local-up: the start-up request
    # reached apps not yet up. Now it waits for every process, so its one trace is a 200.
    found = ZipkinClient(local_mesh.layout.trace_proxy_url).traces(limit=10_000, lookback_ms=86_400_000)
    roots = [s for trace in found for s in trace if "parentId" not in s
             and (s.get("tags") or {}).get("http.url", "").endswith("/echo/local-up")]
    assert [(r["tags"].get("http.status_code"), "error" in r["tags"]) for r in roots] == [("200", False)]


def test_echo_shows_how_many_tries_front_envoy_made(local_mesh):
    echo = inv(local_mesh, "echo")
    assert echo.returncode == 0 and "Hello friend!" in echo.stdout  # the help's default name
    assert "-- x-envoy-attempt-count 1\n" in echo.stdout


def test_local_up_on_the_running_mesh_says_it_is_up(local_mesh):
    again = inv(local_mesh, "local.up")
    assert again.returncode == 0, again.stderr
    assert "already up" in again.stdout and local_mesh.layout.front_url in again.stdout
    assert f"Traces in your browser: {local_mesh.layout.trace_proxy_url}/" in again.stdout  # its port, not 9411
    same = inv(local_mesh, "local.up", "--front-port", str(local_mesh.layout.front_port))
    assert same.returncode == 0, same.stderr


def test_local_up_asked_for_another_layout_says_how_to_get_it(local_mesh):
    other = inv(local_mesh, "local.up", "--front-port", "8100")
    assert other.returncode == 1 and "Traceback" not in other.stderr
    assert other.stderr.strip() == (f"The local mesh is already up with --front-port {local_mesh.layout.front_port}; "
                                    "stop it with `inv local.down` to start it with --front-port 8100.")


def test_local_status_shows_ports_uptime_restarts_and_envoy_admin(local_mesh):
    status = inv(local_mesh, "local.status")
    assert status.returncode == 0, status.stdout + status.stderr
    rows = {line.split()[0]: line.split() for line in status.stdout.splitlines() if line.strip()}
    assert rows["process"] == ["process", "pid", "uptime", "restarts", "listens", "admin", "health"]
    front = rows["front-envoy"]
    assert front[4] == str(local_mesh.layout.front_port)
    assert front[5] == str(local_mesh.layout.front.admin_port)
    assert re.fullmatch(r"\d+s|\d+m\d\ds|\d+h\d\dm", front[2]) and front[3].isdigit()
    assert rows["trace-proxy"][4] == str(local_mesh.layout.trace_proxy_port)
    sidecar = rows["service1-0-envoy"]
    instance = local_mesh.layout.service1[0]
    assert sidecar[4:7] == [str(instance.ingress_port), str(instance.egress_port), str(instance.admin_port)]


@pytest.mark.parametrize("args", [["local.status"], ["echo"], ["traces"], ["traces", "--limit", "20"],
                                  ["traces", "--heatmap"], ["traces", "--breakdown", "serviceName,http.url"],
                                  ["load", "--requests", "3"], ["local.up"], ["demo"], ["--list"], ["load", "--help"],
                                  ["local.up", "--help"], ["traces", "--help"]])
def test_piped_output_fits_80_columns(local_mesh, args):
    result = inv(local_mesh, *args)
    assert result.returncode == 0, result.stderr
    wide = [line for line in result.stdout.splitlines() if len(line) > MAX_PIPED_COLUMNS and "<img" not in line]
    assert not wide
    assert all(line == line.rstrip() for line in result.stdout.splitlines())
