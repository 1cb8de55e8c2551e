"""What `inv dev --cluster` runs inside a pod (meshtools.cluster.live.IN_POD), run here against a
real gunicorn that is pid 1 of its own PID namespace, as in a container: the synced file is
served by a new worker, the master (the container) keeps running, no old worker is left."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

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


def test_a_synced_file_is_served_by_a_new_worker_while_the_master_keeps_running(tmp_path):
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
        source = (PROJECT_ROOT / "service" / "__init__.py").read_text()
        changed = source.replace('jsonify(status="ok"', 'jsonify(status="synced"', 1)
        assert changed != source
        result = in_pod(master, {"files": {"service/__init__.py": changed}, "root": str(code), "signal": "HUP",
                                 "timeout": 30, "health": health})
        assert result.returncode == 0, result.stderr
        assert 0 < float(result.stdout.split()[-1]) < 30
        # Every answer is the new code's at once (the old worker is gone), from the same master.
        assert all(requests.get(health, timeout=5).json()["status"] == "synced" for _ in range(5))
        assert (code / "service" / "__init__.py").read_text() == changed
        assert _children(pod.pid) == {master} and pod.poll() is None
    finally:
        os.killpg(pod.pid, signal.SIGTERM)
        pod.wait(30)


def _up(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).ok
    except requests.RequestException:
        return False


def _children(pid: int) -> set[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return {int(p) for p in found}
