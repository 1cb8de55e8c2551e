"""The Honeycomb key goes where it is needed and nowhere else: no argv, log, output or file.

Every task that can see the key runs as a user runs it (`inv ...` in a subprocess) with a
known fake key in the environment; the cluster tasks run against the fake docker, kind and
kubectl (tests/fakes/, which record every argv), the local ones against a real local mesh.
"""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from meshtools.shared.topology import PROJECT_ROOT
from meshtools.shared.net import free_layout, free_port
from tests.support.fakes_harness import fake_cluster_env
from tests.support.inv_process import layout_flags, run_inv

# Made up at each run: a literal would be found in this very file (and its bytecode).
KEY = "hcaik_fakekey_" + secrets.token_hex(16)
SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".pytest_cache", ".hypothesis"}


class Run:
    """`inv` subprocesses sharing one environment; every output is kept for the final check."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.outputs: list[str] = []

    def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
        result = run_inv(*args, environ=self.env, timeout=180)
        self.outputs.append(result.stdout + result.stderr)
        if ok:
            assert result.returncode == 0, f"inv {' '.join(args)}: {result.stdout}{result.stderr}"
        return result


def files_holding(root: Path, needle: bytes, skip: set[str] = SKIP_DIRS) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in skip]
        for name in filenames:
            path = Path(dirpath) / name
            try:
                if path.is_file() and needle in path.read_bytes():
                    found.append(path)
            except OSError:
                continue
    return found


def processes_with_key_in_argv() -> list[str]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if KEY in cmdline:
            found.append(cmdline)
    return found


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HONEYCOMB_")}
    return {**env, **extra}


def test_fake_cluster_tasks_never_put_the_key_in_argv_output_or_files(tmp_path):
    fakes = fake_cluster_env(tmp_path)
    log, fake_state = Path(fakes["FAKE_LOG"]), Path(fakes["FAKE_STATE"])
    run = Run(clean_env(
        HONEYCOMB_API_KEY=KEY, PATH=os.pathsep.join([str(tmp_path / "bin"), os.environ["PATH"]]),
        INVOKE_LOCAL_STATE_DIR=str(tmp_path / "local-state"), **fakes,
    ))
    ports = ["--front-port", str(free_port()), "--trace-proxy-port", str(free_port())]
    try:
        run("cluster.up")
        run("build")
        run("secret")
        run("deploy", "--no-forward")
        run("forward", *ports)
        run("cluster.status", ok=False)
        run("up", "--cluster", *ports)  # the whole stack again: everything is there, the key is re-applied
    finally:
        run("forward", "--stop", ok=False)
        run("down", "--cluster", ok=False)
        run("cluster.down", ok=False)

    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert {c["argv"][0] for c in calls} >= {"docker", "kind", "kubectl"}
    assert any(KEY in (c.get("stdin") or "") for c in calls), "the key never reached kubectl's stdin"
    assert not [c["argv"] for c in calls if KEY in " ".join(c["argv"])]
    assert not [o for o in run.outputs if KEY in o]
    # Only the fake cluster (its stored Secret) and the fakes' own stdin record may hold it.
    holding = files_holding(tmp_path, KEY.encode())
    assert set(holding) <= {log, fake_state / "state.json"}, holding
    assert not files_holding(PROJECT_ROOT, KEY.encode())


def test_local_tasks_never_put_the_key_in_argv_logs_output_or_files(tmp_path):
    layout = free_layout(replicas=1)
    state = tmp_path / "local-state"
    # An API host where nothing listens: the trace proxy tries, fails and logs that it failed.
    run = Run(clean_env(HONEYCOMB_API_KEY=KEY, HONEYCOMB_API_HOST=f"http://127.0.0.1:{free_port()}/",
                        INVOKE_LOCAL_STATE_DIR=str(state)))
    try:
        run("local.up", *layout_flags(layout))
        run("echo", "--name", "secretive", "--url", layout.front_url)
        run("load", "--url", layout.front_url, "--requests", "10")
        run("traces", "--url", layout.trace_proxy_url)
        run("local.status")
        assert not processes_with_key_in_argv()
        trace_proxy = [p for p in psutil.process_iter(["cmdline", "environ"])
                       if "trace_proxy" in " ".join(p.info["cmdline"] or [])
                       and str(layout.trace_proxy_port) in " ".join(p.info["cmdline"] or [])]
        assert trace_proxy and all((p.info["environ"] or {}).get("HONEYCOMB_API_KEY") == KEY for p in trace_proxy), \
            "the trace proxy should get the key from its environment"
    finally:
        run("local.down", ok=False)
    assert not [o for o in run.outputs if KEY in o]
    assert not files_holding(state, KEY.encode()), "a log or config file holds the key"
    assert not files_holding(PROJECT_ROOT, KEY.encode())


@pytest.mark.parametrize("flag", ["-k", "--writekey"])
def test_trace_proxy_refuses_a_key_in_argv_without_echoing_it(flag):
    result = subprocess.run([sys.executable, "-m", "trace_proxy", flag, KEY], capture_output=True, text=True,
                            timeout=30, env=clean_env())
    assert result.returncode == 2
    assert "HONEYCOMB_API_KEY" in result.stderr and KEY not in result.stdout + result.stderr
