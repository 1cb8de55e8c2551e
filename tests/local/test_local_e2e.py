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
