"""`inv up` / `inv down` against the fake docker, kind and kubectl (tests/fakes/), and the
harness the cluster e2e tests drive a real cluster with, run here on the same fakes."""
from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from invoke import Collection

import tasks
from meshtools.cluster import forward as port_forward
from meshtools.cluster import image
from meshtools.cluster.stack import summary
from tests.support.cluster_stack import ClusterStack, copy_tree
from meshtools.shared.net import free_port
from meshtools.shared.topology import FRONT_LOCAL_PORT, TRACE_PROXY_PORT
from tests.support.fakes_harness import KEY, Fakes, answers, fakes_for
from tests.support.inv_process import run_inv


class StackFakes(Fakes):
    def namespace(self, configure: dict | None = None) -> Collection:
        """The real task tree of tasks.py."""
        return tasks.ns

    def first(self, tool: str, *prefix: str) -> int:
        """Index in the call log of the first `tool PREFIX...` call."""
        for index, call in enumerate(self.calls()):
            if self.is_call(call, tool, *prefix):
                return index
        raise AssertionError(f"no `{tool} {' '.join(prefix)}` call")


@pytest.fixture
def fakes(tmp_path, monkeypatch, capsys):
    yield from fakes_for(StackFakes, tmp_path, monkeypatch, capsys)


def test_inv_up_runs_the_whole_chain_in_order_and_says_where_things_run_fake(fakes):
    front, proxy = free_port(), free_port()
    code, out, err = fakes.inv("up", "--front-port", str(front), "--trace-proxy-port", str(proxy))

    assert code == 0, err
    order = [fakes.first("kind", "create", "cluster"), fakes.first("docker", "build"),
             fakes.first("kind", "load", "docker-image"), fakes.first("kubectl", "apply", "-k"),
             fakes.first("kubectl", "rollout", "status"), fakes.first("kubectl", "port-forward")]
    assert order == sorted(order)
    (apply,) = [c for c in fakes.calls("kubectl") if "-k" in c["argv"]]
    assert f"newTag: {image.last_built().rsplit(':', 1)[1]}" in apply["kustomization"]
    assert answers(front) and answers(proxy)
    assert f"http://127.0.0.1:{front}" in out and f"http://127.0.0.1:{proxy}" in out
    assert f"inv echo --name friend --url http://127.0.0.1:{front}" in out
    assert f"inv traces --url http://127.0.0.1:{proxy}" in out
    assert "stay in the trace proxy" in out
    assert "inv down" in out


def test_inv_up_checks_docker_and_the_cluster_once_fake(fakes):
    code, _, err = fakes.inv("up", "--front-port", str(free_port()), "--trace-proxy-port", str(free_port()))

    assert code == 0, err
    assert len(fakes.argvs("docker", "info")) == 1
    assert len(fakes.argvs("kind", "get", "clusters")) == 1


def test_inv_up_again_with_the_same_key_keeps_the_trace_proxy_running_fake(fakes, monkeypatch):
    monkeypatch.setenv("HONEYCOMB_API_KEY", KEY)
    for _ in range(2):
        code, out, err = fakes.inv("up", "--front-port", str(free_port()), "--trace-proxy-port", str(free_port()))
        assert code == 0, err

    # A restart would empty the trace proxy's span store for nothing.
    assert not fakes.argvs("kubectl", "rollout", "restart")
    assert "already holds this Honeycomb key" in out
    assert [c["stdin"] for c in fakes.calls("kubectl") if "create" in c["argv"]] == [KEY, KEY]

    monkeypatch.setenv("HONEYCOMB_API_KEY", KEY[::-1])
    code, out, err = fakes.inv("up", "--front-port", str(free_port()), "--trace-proxy-port", str(free_port()))
    assert code == 0, err
    assert len(fakes.argvs("kubectl", "rollout", "restart")) == 1 and "Restarted deployment/trace-proxy" in out


def test_inv_up_twice_reuses_the_cluster_and_the_image_fake(fakes):
    for _ in range(2):
        code, _, err = fakes.inv("up", "--front-port", str(free_port()), "--trace-proxy-port", str(free_port()))
        assert code == 0, err

    assert len(fakes.argvs("kind", "create", "cluster")) == 1
    assert len(fakes.argvs("docker", "build")) == 1
    assert len(fakes.argvs("kubectl", "apply", "-k")) == 2


def test_inv_up_stores_a_key_from_the_environment_only_on_stdin_and_says_so_fake(fakes, monkeypatch):
    monkeypatch.setenv("HONEYCOMB_API_KEY", KEY)
    code, out, err = fakes.inv("up", "--front-port", str(free_port()), "--trace-proxy-port", str(free_port()))

    assert code == 0, err
    assert [c["stdin"] for c in fakes.calls("kubectl") if "create" in c["argv"]] == [KEY]
    assert not any(KEY in " ".join(c["argv"]) for c in fakes.calls())
    assert KEY not in out + err
    assert "Honeycomb (key in Secret honeycomb-writekey)" in out


def test_inv_down_stops_the_forwards_and_deletes_the_cluster_fake(fakes):
    fakes.inv("up", "--front-port", str(free_port()), "--trace-proxy-port", str(free_port()))
    pids = [r["pid"] for r in json.loads((fakes.mesh / "forward.json").read_text())]

    code, out, _ = fakes.inv("down")

    assert code == 0
    assert not any(port_forward.alive(pid) for pid in pids)
    assert fakes.argvs("kind", "delete", "cluster") and "Deleted cluster" in out
    assert fakes.inv("down")[0] == 0  # nothing left: still fine


def test_inv_up_without_docker_gives_one_line_and_a_non_zero_exit_fake(fakes):
    fakes.install("kind", "kubectl")
    code, out, err = fakes.inv("up")

    assert code != 0 and "Traceback" not in out + err
    (line,) = err.strip().splitlines()
    assert "docker" in line and "install" in line
    assert not fakes.calls("kind")


def test_inv_up_refuses_a_front_port_in_use_fake(fakes):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        code, _, err = fakes.inv("up", "--front-port", str(busy.getsockname()[1]), "--trace-proxy-port", str(free_port()))

    assert code != 0 and "already in use" in err


@pytest.mark.parametrize("value", ["abc", "-1", "70000"])
def test_inv_up_refuses_a_bad_port_before_creating_anything_fake(fakes, value):
    code, out, err = fakes.inv("up", f"--trace-proxy-port={value}")

    assert code == 1 and "Traceback" not in out + err
    (line,) = err.strip().splitlines()
    assert line.startswith("--trace-proxy-port must be")
    assert not fakes.calls()


def test_inv_up_refuses_an_unknown_variant_before_creating_anything_fake(fakes):
    code, _, err = fakes.inv("up", "--variant", "nope")

    assert code == 1 and "default, upstream-proxy" in err
    assert not fakes.calls()


def test_inv_down_without_kind_stops_the_forwards_and_exits_0_fake(fakes):
    fakes.inv("up", "--front-port", str(free_port()), "--trace-proxy-port", str(free_port()))
    pids = [r["pid"] for r in json.loads((fakes.mesh / "forward.json").read_text())]
    fakes.install("docker", "kubectl")

    code, out, err = fakes.inv("down")

    assert code == 0, err
    assert "kind is not installed" in out
    assert not any(port_forward.alive(pid) for pid in pids)


@pytest.mark.parametrize("task", ["up", "forward"])
def test_port_flag_help_shows_the_defaults_from_topology(task):
    result = run_inv("--help", task, env={"COLUMNS": "200"}, timeout=60)

    assert result.returncode == 0, result.stderr
    assert f"(default {FRONT_LOCAL_PORT})" in result.stdout and f"(default {TRACE_PROXY_PORT})" in result.stdout


def test_summary_with_the_default_ports_needs_no_url_flags():
    forwards = port_forward.default_forwards()
    lines = "\n".join(summary("envoy-tracing", forwards, has_key=False))

    assert "http://127.0.0.1:8000" in lines and "http://127.0.0.1:9411/api/v2/traces" in lines
    assert "--url" not in lines and "kind-envoy-tracing" in lines


def test_the_e2e_harness_deploys_from_a_copy_and_leaves_the_repository_alone_fake(fakes, tmp_path):
    """The cluster e2e tests' `inv` runs in a subprocess from a changed copy of the tree."""
    tree = copy_tree(tmp_path / "tree")
    stack = ClusterStack("envoy-tracing", fakes.mesh, free_port(), free_port(), free_port())
    stack.inv("cluster.up", tree=tree)
    stack.inv("build", "--name", stack.name, "deploy", "--name", stack.name, "--no-forward", tree=tree)
    stack.inv("forward", "--name", stack.name, *stack.forward_ports(), tree=tree)

    (build,) = fakes.argvs("docker", "build")
    assert Path(build[build.index("--file") + 1]).is_relative_to(tree)
    # The forwards are recorded in the tests' own state directory, not the developer's.
    assert {f.local_port for f in port_forward.recorded(fakes.mesh)} == {stack.front_port, stack.trace_proxy_port,
                                                                        stack.otlp_port}
    assert answers(stack.front_port) and answers(stack.trace_proxy_port) and answers(stack.otlp_port)
    stack.stop_forwards()
    assert not answers(stack.front_port)
