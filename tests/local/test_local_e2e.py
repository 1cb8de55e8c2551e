"""What only the local target does: its supervisor restarts a process that dies.

The end-to-end tests shared with the cluster target (the trace, chris, escaping, balancing)
are in test_e2e.py.
"""
from __future__ import annotations

import os

from meshtools.views.front import echo
from tests.support.waiting import wait_for


def test_a_process_that_dies_is_restarted_by_the_supervisor(local_mesh):
    before = {p.name: p.pid for p in local_mesh.status()}
    os.kill(before["service2-0-app"], 9)

    def restarted():
        now = {p.name: p for p in local_mesh.status()}["service2-0-app"]
        return now.state == "RUNNING" and now.pid != before["service2-0-app"] and now.healthy

    wait_for(restarted, 30, "service2-0-app restarted by supervisord")
    assert echo(local_mesh.layout.front_url, "again").status == 200


def test_each_process_runs_in_a_session_of_its_own_as_a_pod_has_its_own_cgroup(local_mesh):
    # The scheduler shares the CPU between sessions first (autogroup): in supervisord's one
    # session the whole mesh got one process's share of a busy machine, and local.up took
    # seconds longer (meshtools/local/supervisord_sessions.py).
    pids = [p.pid for p in local_mesh.status()]
    assert len(pids) == 10 and all(pids)
    sessions = {os.getsid(pid) for pid in pids}
    assert sessions == set(pids)  # each its own session's leader, so each its own group too
    assert os.getsid(local_mesh.supervisord_pid()) not in sessions
    assert all(os.getpgid(pid) == pid for pid in pids)  # supervisord's stopasgroup still reaches its workers
