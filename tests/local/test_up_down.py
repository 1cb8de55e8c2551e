"""`inv up` / `inv down` act on the local mesh unless the cluster is meant (--cluster, a flag
only the cluster takes, `target: cluster`, a configured shared cluster). `inv up` on a laptop
without kind said "kind is not on PATH"; `inv down` said "nothing to delete" and left the local
mesh running."""
from __future__ import annotations

import pytest
import requests

from meshtools.cluster.offline.cache import CACHE_DIR_ENV
from meshtools.shared.net import free_layout, port_in_use
from tests.support.inv_process import run_inv

NO_KIND = {"PATH": "/usr/bin:/bin"}  # kind, docker and kubectl out of reach, as on a newcomer's laptop


def no_kind(tmp_path) -> dict[str, str]:
    """NO_KIND, and no kind that `inv cluster.images` built either (the tasks look in its cache too)."""
    return {**NO_KIND, CACHE_DIR_ENV: str(tmp_path / "offline-cache")}


def inv(*args, state_dir, env=None):
    return run_inv(*args, state_dir=state_dir, env={"NO_COLOR": "1", **(env or {})}, timeout=240)


def test_inv_up_then_down_is_the_local_mesh_by_default(tmp_path):
    layout = free_layout(replicas=1)
    flags = ["--front-port", str(layout.front_port), "--trace-proxy-port", str(layout.trace_proxy_port)]
    # replicas and the other ports from the invoke settings: inv up takes the flags both targets share
    env = {"INVOKE_LOCAL_REPLICAS": "1", "INVOKE_LOCAL_BASE_PORT": str(layout.base_port),
           "INVOKE_LOCAL_OTLP_PORT": str(layout.otlp_port)}
    up = inv("up", *flags, state_dir=tmp_path, env=env)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "The local mesh (`inv up --cluster` brings up the kind cluster instead):" in up.stdout
        assert "kind" not in up.stderr
        assert requests.get(f"{layout.front_url}/echo/up", timeout=20).status_code == 200
    finally:
        down = inv("down", state_dir=tmp_path)
    assert down.returncode == 0 and down.stdout.strip() == "The local mesh is stopped.", down.stdout + down.stderr
    assert not [p for p in layout.ports() if port_in_use("127.0.0.1", p)]
    again = inv("down", state_dir=tmp_path)
    assert again.returncode == 0
    assert again.stdout.strip() == "The local mesh was not running; `inv down --cluster` deletes the kind cluster."


@pytest.mark.parametrize("args, env", [(["--cluster"], {}), (["--name", "mine"], {}), ([], {"INVOKE_TARGET": "cluster"})],
                         ids=["flag", "cluster-only-flag", "setting"])
def test_the_cluster_is_still_reachable(tmp_path, args, env):
    result = inv("up", *args, state_dir=tmp_path, env={**no_kind(tmp_path), **env})
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "kind" in result.stderr and "local mesh" not in result.stdout, result.stdout + result.stderr


def test_a_target_setting_that_is_neither_is_one_sentence(tmp_path):
    result = inv("down", state_dir=tmp_path, env={"INVOKE_TARGET": "moon"})
    assert result.returncode == 1
    assert result.stderr.strip() == "The invoke setting target must be local or cluster, got 'moon'."
