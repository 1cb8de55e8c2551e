"""`inv local.stop/start/restart NAME…`: one process at a time, as `docker compose` users expect."""
from __future__ import annotations

import requests

from meshtools.local.mesh import LocalMesh
from tests.conftest import running_mesh
from tests.support.inv_process import run_inv
from tests.support.terminal import on_a_terminal
from tests.support.waiting import wait_for


def states(mesh: LocalMesh) -> dict[str, tuple[str, int]]:
    return {s.name: (s.state, s.pid) for s in mesh.status()}


def untouched(before: dict, now: dict, name: str) -> bool:
    """The same process, still up: supervisord may have moved it from STARTING to RUNNING
    (once it lived its startsecs) in between, which is not a restart."""
    return now[name][1] == before[name][1] and now[name][0] in ("STARTING", "RUNNING")


def echo_status(mesh: LocalMesh) -> int:
    try:
        return requests.get(f"{mesh.layout.front_url}/echo/controls", timeout=10).status_code
    except requests.RequestException:
        return 0


def test_stop_start_and_restart_act_on_the_named_processes_only(tmp_path):
    with running_mesh(tmp_path / "mesh", replicas=1) as mesh:
        before = states(mesh)
        stopped = run_inv("local.stop", "service2", state_dir=mesh.state_dir)
        assert stopped.returncode == 0, stopped.stderr
        assert "service2-0-app, service2-0-envoy: stopped." in stopped.stdout
        after = states(mesh)
        assert after["service2-0-app"][0] == after["service2-0-envoy"][0] == "STOPPED"
        assert untouched(before, after, "front-envoy") and untouched(before, after, "service1-0-app")
        # Stopped stays stopped (supervisord does not bring it back), and the mesh shows it.
        assert echo_status(mesh) in (502, 503)
        # `inv status` says so, one line each, and the last error line of the processes the
        # failed request crossed (its 502 answer, in service1's app log).
        shown = run_inv("status", state_dir=mesh.state_dir, env={"COLUMNS": "80"})
        assert shown.returncode == 1, shown.stderr
        rows = {line.split()[0]: line for line in shown.stdout.splitlines()[2:]}
        assert rows["service2-0-app"].split()[1] == "stopped" and rows["front-envoy"].split()[1] == "up"
        assert shown.stdout.splitlines()[0] == "local mesh: 4 of 6 up"
        assert "GET /echo/controls 502" in rows["service1-0-app"], shown.stdout
        assert all(len(line) <= 80 for line in shown.stdout.splitlines())
        again = run_inv("local.stop", "service2-0-app", state_dir=mesh.state_dir)
        assert again.returncode == 0 and "service2-0-app: already stopped." in again.stdout

        started = run_inv("local.start", "service2", state_dir=mesh.state_dir)
        assert started.returncode == 0, started.stderr
        assert "service2-0-app, service2-0-envoy: started and answering." in started.stdout
        wait_for(lambda: echo_status(mesh) == 200, 20, "a request passing again once service2 is back")

        old_pid = states(mesh)["service1-0-app"][1]
        restarted = run_inv("local.restart", "service1-0-app", state_dir=mesh.state_dir)
        assert restarted.returncode == 0, restarted.stderr
        assert "service1-0-app: restarted and answering." in restarted.stdout
        now = states(mesh)
        # A new process, answering already (supervisord calls it RUNNING once it has lived its startsecs).
        assert now["service1-0-app"][0] in ("STARTING", "RUNNING") and now["service1-0-app"][1] != old_pid
        assert requests.get(f"http://{mesh.layout.host}:{mesh.layout.service1[0].app_port}/healthz", timeout=5).ok
        assert untouched(before, now, "front-envoy")
        wait_for(lambda: echo_status(mesh) == 200, 20, "a request passing after the restart")

        # --watch redraws the view in place (rich's Live) until Ctrl-C, on a terminal 80 wide.
        code, out = on_a_terminal("status", "--watch", state_dir=mesh.state_dir, columns=80,
                                  until="refreshing every")
        assert code == 0, out
        assert "local mesh" in out and "service2-0-envoy" in out and "up" in out
        assert all(len(line) <= 80 for line in out.splitlines())

        unknown = run_inv("local.restart", "service3", state_dir=mesh.state_dir)
        assert unknown.returncode == 1 and "Traceback" not in unknown.stderr
        assert unknown.stderr.startswith("No process named 'service3'; the local processes are trace-proxy, ")
        nothing = run_inv("local.stop", state_dir=mesh.state_dir)
        assert nothing.returncode == 1 and nothing.stderr.startswith("Name the processes")


def test_controls_without_a_mesh_say_how_to_start_one(tmp_path):
    result = run_inv("local.restart", "service2", state_dir=tmp_path)
    assert result.returncode == 3 and "`inv local.up` starts it" in result.stderr


def test_the_request_local_up_waits_for_is_traced_whole(tmp_path):
    """`up` sends its request once the trace proxy answers: the mesh's first trace loses no span."""
    from meshtools.shared.net import free_layout
    from meshtools.views.trace_lookup import SPANS_PER_ECHO, find_trace
    from meshtools.views.zipkin_client import ZipkinClient
    from tests.conftest import FAST_SLOW_STAGE

    mesh = LocalMesh(layout=free_layout(replicas=1), state_dir=tmp_path / "mesh", service_env=FAST_SLOW_STAGE)
    try:
        reply = mesh.up(timeout=90)
        assert reply.status_code == 200
        spans = find_trace(ZipkinClient(mesh.layout.trace_proxy_url), reply.headers["x-request-id"], timeout=30)
        assert len(spans) == SPANS_PER_ECHO and len({s["id"] for s in spans}) == SPANS_PER_ECHO
    finally:
        mesh.down()


def test_a_process_that_exits_as_the_mesh_starts_is_named_and_nothing_is_left_running(tmp_path):
    """The processes start all at once; one that dies at start (here: every app, given a
    setting gunicorn refuses) ends `up` at once with its name and last log line, not at the
    deadline, and the rest are stopped."""
    import pytest

    from meshtools.local.mesh import MeshError
    from meshtools.shared.net import free_layout, port_in_use

    mesh = LocalMesh(layout=free_layout(replicas=1), state_dir=tmp_path / "mesh",
                     service_env={"GUNICORN_WORKERS": "many"})
    try:
        with pytest.raises(MeshError) as failed:
            mesh.up(timeout=90)
    finally:
        mesh.down()
    said = str(failed.value)
    assert "-app exited as it started: ValueError: invalid literal for int()" in said, said
    assert "`inv logs service" in said
    assert mesh.supervisord_pid() is None
    assert not [p for p in mesh.layout.ports() if port_in_use(mesh.layout.host, p)]
