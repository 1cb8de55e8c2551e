"""`inv dev` on a real local mesh: a change restarts what it affects and requests keep being served.

The tests never edit the repository: they hand the loop the changed paths (as the watcher
would), or only touch a file's time; a broken change is a broken copy of the package.
"""
from __future__ import annotations

import re
import shutil
import signal
import threading
import time

import pytest
import requests

from meshtools.local import dev, envoy_config
from meshtools.shared.topology import ENVOY_CONFIG_DIR, PROJECT_ROOT
from tests.conftest import running_mesh
from tests.support.inv_process import started_inv

SERVICE_FILE = PROJECT_ROOT / "service" / "__init__.py"
SERVICE2_ENVOY = ENVOY_CONFIG_DIR / "service2-envoy.yaml"
LINE = re.compile(r"served again (\d+\.\d) s after the save$")


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    with running_mesh(tmp_path_factory.mktemp("dev-mesh"), replicas=2) as mesh:
        yield mesh


def pids(mesh) -> dict[str, int]:
    return {p.name: p.pid for p in mesh.status()}


class Traffic:
    """Requests through the front, one after another, while a change is applied."""

    def __init__(self, front_url: str):
        self.url = f"{front_url}/echo/during-dev"
        self.statuses: list[int | str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        with requests.Session() as session:
            while not self._stop.is_set():
                try:
                    self.statuses.append(session.get(self.url, timeout=20).status_code)
                except requests.RequestException as exc:
                    self.statuses.append(type(exc).__name__)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(30)


def test_a_service_change_reloads_each_app_in_turn_without_refusing_a_request(mesh):
    before = pids(mesh)
    workers = {name: dev.children(pid) for name, pid in before.items() if name.endswith("-app")}
    with Traffic(mesh.layout.front_url) as traffic:
        time.sleep(0.3)
        (line,) = dev.DevLoop(mesh).apply([SERVICE_FILE], time.time())
        time.sleep(0.3)
    assert line.startswith("service/__init__.py changed → restarted service2-0-app, service1-0-app, service1-1-app "
                           "(gracefully, all at once); served again "), line
    assert float(LINE.search(line)[1]) < 30
    assert traffic.statuses and set(traffic.statuses) == {200}, traffic.statuses
    after = pids(mesh)
    assert after == before  # the gunicorn masters (and the Envoys) kept running...
    for name, old in workers.items():  # ...with new workers, the code loaded anew, and by the time the
        assert dev.children(after[name]) - old, name  # line says "served again" no old worker is left to
        assert not (dev.children(after[name]) & old), name  # answer a keep-alive request with the old code


def test_an_envoy_config_change_restarts_only_the_envoys_that_run_it(mesh):
    before = pids(mesh)
    (line,) = dev.DevLoop(mesh).apply([SERVICE2_ENVOY], time.time())
    assert line.startswith("manifests/base/envoy/service2-envoy.yaml changed → restarted service2-0-envoy; "), line
    after = pids(mesh)
    assert after["service2-0-envoy"] != before["service2-0-envoy"]
    assert {k: v for k, v in after.items() if k != "service2-0-envoy"} == \
           {k: v for k, v in before.items() if k != "service2-0-envoy"}


def test_a_trace_proxy_change_restarts_the_proxy_alone(mesh):
    before = pids(mesh)
    (line,) = dev.DevLoop(mesh).apply([PROJECT_ROOT / "trace_proxy" / "app.py"], time.time())
    assert line.startswith("trace_proxy/app.py changed → restarted trace-proxy"), line
    after = pids(mesh)
    assert after.pop("trace-proxy") != before.pop("trace-proxy") and after == before


def test_a_change_that_does_not_import_leaves_the_apps_serving_and_says_why(mesh, tmp_path):
    broken = tmp_path / "service"
    shutil.copytree(PROJECT_ROOT / "service", broken, ignore=shutil.ignore_patterns("__pycache__"))
    source = (broken / "__init__.py").read_text()
    (broken / "__init__.py").write_text(source.replace("def create_app(", "def create_app((", 1))
    before = pids(mesh)
    workers = {name: dev.children(pid) for name, pid in before.items() if name.endswith("-app")}
    (line,) = dev.DevLoop(mesh, source_root=tmp_path).apply([SERVICE_FILE], time.time())
    assert line.startswith("service/__init__.py changed: NOT restarted, the running processes keep serving: "
                           "SyntaxError: "), line
    assert 'File "service/__init__.py", line' in line
    assert pids(mesh) == before
    assert {name: dev.children(before[name]) for name in workers} == workers
    assert requests.get(f"{mesh.layout.front_url}/echo/still", timeout=20).status_code == 200


def test_an_envoy_config_that_does_not_validate_leaves_the_envoys_serving(mesh, monkeypatch):
    real = envoy_config.load

    def broken(service):
        config = real(service)
        config["static_resources"]["clusters"][0]["connect_timeout"] = "soon"
        return config

    monkeypatch.setattr(envoy_config, "load", broken)
    before = pids(mesh)
    (line,) = dev.DevLoop(mesh).apply([SERVICE2_ENVOY], time.time())
    assert line.startswith("manifests/base/envoy/service2-envoy.yaml changed: NOT restarted, the running processes "
                           "keep serving: Envoy refused it: manifests/base/envoy/service2-envoy.yaml:"), line
    assert "connect_timeout" in line and "{" not in line and len(line) < 400, line  # a place, not a JSON dump
    assert pids(mesh) == before
    assert requests.get(f"{mesh.layout.front_url}/echo/still", timeout=20).status_code == 200


def test_other_files_are_not_watched():
    assert dev.Plan.of([PROJECT_ROOT / "README.md", PROJECT_ROOT / "service" / "__pycache__" / "x.pyc"]).__bool__() is False
    assert not dev.watched(PROJECT_ROOT / "meshtools" / "tasks" / "dev.py")
    assert dev.watched(SERVICE_FILE) and dev.watched(SERVICE2_ENVOY)


def test_inv_dev_watches_reports_one_line_and_ctrl_c_leaves_the_mesh_up(mesh):
    with started_inv("dev", state_dir=mesh.state_dir) as proc:
        assert "Using the running local mesh" in proc.stdout.readline()
        assert proc.stdout.readline().startswith("Watching service/, trace_proxy/ and manifests/base/envoy/")
        time.sleep(0.5)  # the watcher is set up right after the line: give it a moment
        SERVICE2_ENVOY.touch()  # a save, content unchanged
        line = proc.stdout.readline()
        assert re.match(r"\d\d:\d\d:\d\d manifests/base/envoy/service2-envoy.yaml changed → restarted "
                        r"service2-0-envoy; served again \d+\.\d s after the save", line), line
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "Stopped watching; the local mesh is still up (`inv local.down` stops it)." in out
    assert mesh.is_running()
    assert requests.get(f"{mesh.layout.front_url}/echo/after-dev", timeout=20).status_code == 200


def test_children_are_the_processes_a_process_started():
    import os
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert child.pid in dev.children(os.getpid())
        assert dev.children(child.pid) == set()
    finally:
        child.stdin.close()
        child.wait(10)
    assert child.pid not in dev.children(os.getpid())
