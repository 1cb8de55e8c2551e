"""What `inv dev --cluster` runs inside a pod (meshtools.cluster.live.IN_POD), run here against a
real gunicorn that is pid 1 of its own PID namespace, as in a container: the synced file is
served by a new worker, the master (the container) keeps running, no old worker is left."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
import requests

from meshtools.cluster import live
from meshtools.shared.net import free_port
from meshtools.shared.topology import PROJECT_ROOT
from tests.support.waiting import wait_for


def can_unshare() -> bool:
    if not shutil.which("unshare") or not shutil.which("nsenter"):
        return False
    return subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(not can_unshare(), reason="needs unshare/nsenter with PID namespaces (root)")


def in_pod(pid: int, order: dict) -> subprocess.CompletedProcess:
    """IN_POD run in the namespaces of `pid` (the "container"), as `kubectl exec -i … python -c` does."""
    return subprocess.run(["nsenter", "-t", str(pid), "-p", "-m", sys.executable, "-c", live.IN_POD],
                          input=json.dumps(order), capture_output=True, text=True, timeout=60)


@contextlib.contextmanager
def gunicorn_pod(tmp_path) -> Iterator[tuple[int, Path, str]]:
    """The dev overlay's service2 container: gunicorn as pid 1 of a PID namespace, its code in a
    folder of its own. Yields the master's pid (outside), the code folder and the health URL."""
    code = tmp_path / "srv-dev"
    shutil.copytree(PROJECT_ROOT / "service", code / "service", ignore=shutil.ignore_patterns("__pycache__"))
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(code), "BIND": f"127.0.0.1:{port}", "SERVICE_NAME": "2"}
    # The dev overlay's command: gunicorn reads its settings from the code volume's file.
    pod = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-m", "gunicorn", "-c",
                            str(code / "service" / "gunicorn_conf.py"), "service:create_app()"],
                           cwd=tmp_path, env=env, start_new_session=True)
    try:
        health = f"http://127.0.0.1:{port}/healthz"
        wait_for(lambda: _up(health), 60, "gunicorn answering")
        (master,) = wait_for(lambda: _children(pod.pid), 10, "pid 1 of the namespace")
        yield master, code, health
        assert _children(pod.pid) == {master} and pod.poll() is None  # the same master, no worker left over
    finally:
        os.killpg(pod.pid, signal.SIGTERM)
        pod.wait(30)


def changed_source(status: str) -> str:
    source = (PROJECT_ROOT / "service" / "__init__.py").read_text()
    changed = source.replace('jsonify(status="ok"', f'jsonify(status="{status}"', 1)
    assert changed != source
    return changed


def test_a_synced_file_is_served_by_a_new_worker_while_the_master_keeps_running(tmp_path):
    with gunicorn_pod(tmp_path) as (master, code, health):
        changed = changed_source("synced")
        result = in_pod(master, {"files": {"service/__init__.py": changed}, "root": str(code), "signal": "HUP",
                                 "timeout": 30, "health": health})
        assert result.returncode == 0, result.stderr
        assert 0 < float(result.stdout.split()[-1]) < 30
        # Every answer is the new code's at once (the old worker is gone), from the same master.
        assert all(requests.get(health, timeout=5).json()["status"] == "synced" for _ in range(5))
        assert (code / "service" / "__init__.py").read_text() == changed


def test_a_session_applies_one_change_a_line_and_says_why_one_failed(tmp_path):
    """`serve` mode, as an exec session runs it: each order a line in, "ok SECONDS" or "error WHY" out."""
    with gunicorn_pod(tmp_path) as (master, code, health):
        session = subprocess.Popen(["nsenter", "-t", str(master), "-p", "-m", sys.executable, "-u", "-c", live.IN_POD,
                                    "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            for status in ("first", "second"):
                order = {"files": {"service/__init__.py": changed_source(status)}, "root": str(code),
                         "signal": "HUP", "timeout": 30, "health": health}
                session.stdin.write(json.dumps(order) + "\n")
                session.stdin.flush()
                answer, seconds = session.stdout.readline().split()
                assert answer == "ok" and 0 < float(seconds) < 30
                assert requests.get(health, timeout=5).json()["status"] == status
            nowhere = {**order, "files": {}, "timeout": 1, "health": f"http://127.0.0.1:{free_port()}/healthz"}
            session.stdin.write(json.dumps(nowhere) + "\n")
            session.stdin.flush()
            assert session.stdout.readline().strip() == "error no new worker answered within 1 s"
        finally:
            session.stdin.close()
            assert session.wait(30) == 0  # stdin closed: the session ends on its own


def _up(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).ok
    except requests.RequestException:
        return False


def _children(pid: int) -> set[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return {int(p) for p in found}
