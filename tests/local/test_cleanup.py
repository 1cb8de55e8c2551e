"""Ctrl-C, SIGTERM and crashes leave nothing behind, and need no manual step afterwards."""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest

from meshtools.shared.net import free_layout, free_port, port_in_use
from tests.support.fakes_harness import FAKES, fake_cluster_env
from tests.support.inv_process import layout_flags, run_inv, started_inv
from tests.support.waiting import wait_for


def supervised_tree(state_dir: Path) -> list[psutil.Process]:
    """supervisord and everything under it, once it has started its programs."""
    try:
        root = psutil.Process(int((state_dir / "supervisord.pid").read_text()))
        return [root, *root.children(recursive=True)]
    except (OSError, ValueError, psutil.Error):
        return []


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    return [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@pytest.fixture
def stuck_envoy(tmp_path) -> dict:
    """An `envoy` on PATH that never listens: `inv local.up` keeps waiting until signalled."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "envoy"
    fake.write_text("#!/bin/sh\nexec sleep 600\n")
    fake.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_local_up_stops_everything_it_started(tmp_path, stuck_envoy, sig):
    layout = free_layout(replicas=1)
    state = tmp_path / "state"
    with started_inv("local.up", *layout_flags(layout), state_dir=state, env=stuck_envoy) as up:
        # Every program started (trace proxy, 2 apps, 3 Envoys): up is now waiting for the front.
        tree = wait_for(lambda: len(supervised_tree(state)) >= 7 and supervised_tree(state), 60,
                        "supervisord to start its programs")
        up.send_signal(sig)
        out, err = up.communicate(timeout=60)
    assert up.returncode != 0
    assert "Traceback" not in err, err
    assert "stopped" in (out + err)
    wait_for(lambda: not alive(tree), 15, f"no process left: {alive(tree)}")
    assert not (state / "supervisord.pid").exists() and not (state / "supervisor.sock").exists()
    assert not [p for p in layout.ports() if port_in_use(layout.host, p)]


def test_local_up_after_a_crash_recovers_without_manual_steps(tmp_path):
    layout = free_layout(replicas=1)
    assert run_inv("local.up", *layout_flags(layout), state_dir=tmp_path).returncode == 0
    try:
        tree = supervised_tree(tmp_path)
        # The machine "crashes": everything dies at once, the pid and socket files stay.
        for process in tree:
            process.kill()
        wait_for(lambda: not alive(tree), 15, "the crash")
        assert (tmp_path / "supervisord.pid").exists() and (tmp_path / "supervisor.sock").exists()

        again = run_inv("local.up", *layout_flags(layout), state_dir=tmp_path)
        assert again.returncode == 0, again.stdout + again.stderr
        assert run_inv("local.status", state_dir=tmp_path).returncode == 0
    finally:
        down = run_inv("local.down", state_dir=tmp_path)
    assert down.returncode == 0
    assert not [p for p in layout.ports() if port_in_use(layout.host, p)]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_load_ends_it_promptly_and_leaves_nothing(local_mesh, tmp_path, sig):
    with started_inv("load", "--url", local_mesh.layout.front_url, "--duration", "60", "--concurrency", "2",
                     state_dir=tmp_path) as load:
        wait_for(lambda: psutil.Process(load.pid).num_threads() > 2, 20, "the load's workers")
        time.sleep(1)  # let a few requests complete, so there is something to summarise
        children = psutil.Process(load.pid).children(recursive=True)
        load.send_signal(sig)
        out, err = load.communicate(timeout=20)
    assert load.returncode != 0
    assert "Traceback" not in err, err
    assert not alive(children)
    if sig == signal.SIGINT:
        assert load.returncode == 130


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_fake_signal_during_forward_leaves_no_port_forward_behind(tmp_path, sig):
    """`inv forward` against the fake kind/kubectl, with port-forwards that never answer."""
    env = fake_cluster_env(tmp_path, tools=("docker", "kind"))
    bin_dir, fake_state, cluster_state = tmp_path / "bin", env["FAKE_STATE"], Path(env["ENVOY_TRACING_STATE_DIR"])
    kubectl = bin_dir / "kubectl"
    # A port-forward that hangs before it listens (its argv still says port-forward).
    kubectl.write_text('#!/bin/sh\n'
                       f'case " $* " in *" port-forward "*) exec "{sys.executable}" -c "{HANG}" "$@";; esac\n'
                       f'exec "{FAKES / "kubectl"}" "$@"\n')
    kubectl.chmod(0o755)
    env["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    setup = run_inv("cluster.up", env=env, timeout=60)
    assert setup.returncode == 0, setup.stdout + setup.stderr

    def hanging_forwards():
        return [p for p in psutil.process_iter(["cmdline"])
                if HANG in (p.info["cmdline"] or []) and _launched_by(p, fake_state)]

    with started_inv("forward", "--front-port", str(free_port()), "--trace-proxy-port", str(free_port()),
                     state_dir=tmp_path, env=env) as forward:
        started = wait_for(hanging_forwards, 20, "the port-forward to start")
        forward.send_signal(sig)
        out, err = forward.communicate(timeout=30)
    assert forward.returncode != 0
    assert "Traceback" not in err, err
    wait_for(lambda: not alive(started), 10, f"no port-forward left: {alive(started)}")
    assert not (cluster_state / "forward.json").exists()


HANG = "import time; time.sleep(600)"


def _launched_by(process: psutil.Process, marker: str) -> bool:
    try:
        return marker in process.environ().get("FAKE_STATE", "")
    except psutil.Error:
        return False
