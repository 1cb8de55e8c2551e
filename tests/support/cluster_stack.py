"""A real kind cluster for the tests marked `cluster`, driven through our own tasks.

`inv up` brings the stack up with the port-forwards on free local ports and a private state
directory, so a developer's own forwards (8000, 9411) and image record stay untouched.
`inv build deploy` from a tree (a temporary copy holding a change, or the repository)
redeploys it. An existing cluster is reused and left running; one the tests created is
deleted at the end unless pytest runs with --keep-cluster.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import requests
from invoke.exceptions import Exit

from meshtools.cluster import image, kind
from meshtools.cluster import secret as secrets
from meshtools.cluster.state import STATE_DIR_ENV
from meshtools.views.front import echo_url
from meshtools.cluster.kubectl import Kubectl
from meshtools.shared.net import free_port, port_in_use
from meshtools.shared.topology import FRONT, LOOPBACK, PROJECT_ROOT, SERVICE1, SERVICE2
from meshtools.views.trace_lookup import SPANS_PER_ECHO, find_trace
from meshtools.views.zipkin_client import TraceProxyError, ZipkinClient
from tests.support.e2e_targets import Target, serving_pod
from tests.support.inv_process import run_inv
from tests.support.terminal import on_a_terminal

# Set (by .ci/run, after `inv cluster.images`): the stack comes up with `inv up --offline`, from the
# node image built on this machine, and nothing is pulled. Unset: kind's own node image.
OFFLINE_ENV = "ENVOY_TRACING_TEST_OFFLINE"
INV_TIMEOUT = 1200  # a first `inv up` builds the image and pulls Envoy's
SETTLE_TIMEOUT = 180
# Everything but what git ignores and git itself: the copy builds and deploys like the repo.
COPY_IGNORE = shutil.ignore_patterns(".git", ".mesh", ".venv", "__pycache__", "*.pyc", ".pytest_cache",
                                     ".hypothesis", "*.egg-info", ".benchmarks")


def steady_port() -> int:
    """A free port below the kernel's ephemeral range: the forwards are stopped and started again
    after every redeploy, and a port from that range (what binding port 0 gives) can meanwhile be
    taken as the source port of any outgoing connection, kubectl's own to the API server among them."""
    low = ephemeral_start() - 1
    for _ in range(200):
        port = random.randint(20000, low)
        if not port_in_use(LOOPBACK, port):
            return port
    return free_port()


def ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def copy_tree(destination: Path) -> Path:
    """A copy of the repository to change and deploy from: the repository itself never changes."""
    shutil.copytree(PROJECT_ROOT, destination, ignore=COPY_IGNORE)
    return destination


@dataclass
class ClusterStack:
    name: str
    state: Path  # ENVOY_TRACING_STATE_DIR of every `inv` the tests run
    front_port: int
    trace_proxy_port: int
    otlp_port: int  # the trace proxy's OTLP/HTTP receiver, forwarded too (never a developer's 4318)

    @property
    def front_url(self) -> str:
        return f"http://{LOOPBACK}:{self.front_port}"

    @property
    def trace_proxy_url(self) -> str:
        return f"http://{LOOPBACK}:{self.trace_proxy_port}"

    @property
    def kubectl(self) -> Kubectl:
        return Kubectl(self.name)

    def inv(self, *argv: str, tree: Path = PROJECT_ROOT, capture: bool = False) -> str:
        """Run our `inv` in `tree` (its tasks.py and meshtools); its output lands in the test report,
        or, with `capture`, comes back."""
        # Test spans stay out of a developer's Honeycomb.
        environ = {k: v for k, v in os.environ.items() if k not in secrets.KEY_VARIABLES}
        env = {STATE_DIR_ENV: str(self.state),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH")])),
               **self.settings()}
        result = run_inv(*argv, environ=environ, env=env, cwd=tree, timeout=INV_TIMEOUT, capture=capture)
        if result.returncode:
            shown = f":\n{result.stdout}{result.stderr}" if capture else "; its output is above."
            pytest.fail(f"`inv {' '.join(argv)}` in {tree} failed (exit {result.returncode}){shown}")
        return result.stdout if capture else ""

    def settings(self) -> dict[str, str]:
        """Invoke settings for every `inv` (INVOKE_* variables); none on the kind cluster."""
        return {}

    def inv_output(self, *argv: str) -> str:
        return self.inv(*argv, capture=True)

    def image_ref(self) -> str:
        """The service image `inv build` last made for this stack."""
        return (self.state / image.TAG_FILE).read_text().strip()

    def forward_ports(self) -> list[str]:
        return ["--front-port", str(self.front_port), "--trace-proxy-port", str(self.trace_proxy_port),
                "--otlp-port", str(self.otlp_port)]

    def up(self) -> None:
        offline = ["--offline"] if os.environ.get(OFFLINE_ENV) else []
        self.inv("up", "--cluster", "--name", self.name, *offline, *self.forward_ports())
        self.settle()

    def deploy(self, tree: Path = PROJECT_ROOT, *deploy_flags: str, zipkin_ui_port: int | None = None) -> None:
        """`inv build deploy` from `tree`, then the forwards again: a rollout replaces their pods."""
        self.inv("build", "--name", self.name, "deploy", "--name", self.name, "--no-forward", *deploy_flags, tree=tree)
        self.restore_forwards(tree, zipkin_ui_port)

    def restore_forwards(self, tree: Path = PROJECT_ROOT, zipkin_ui_port: int | None = None) -> None:
        """The forwards again (a restarted pod ends the one to it), once the stack answers."""
        zipkin = ["--zipkin-ui-port", str(zipkin_ui_port)] if zipkin_ui_port else []
        self.inv("forward", "--name", self.name, *self.forward_ports(), *zipkin, tree=tree)
        self.settle()

    def stop_forwards(self) -> None:
        self.inv("forward", "--stop")

    def down(self) -> None:
        self.inv("down", "--cluster", "--name", self.name)

    def pods(self, app: str) -> set[str]:
        """The pods of a Deployment that are running and not on their way out."""
        listed = json.loads(self.kubectl.run("get", "pods", "--selector", f"app={app}", "--output", "json",
                                             capture=True).stdout)
        return {p["metadata"]["name"] for p in listed["items"]
                if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")}

    def instances(self) -> dict[str, set[str]]:
        return {app: self.pods(app) for app in (FRONT, SERVICE1, SERVICE2)}

    def target(self) -> Target:
        return Target("cluster", self.front_url, self.trace_proxy_url, self.instances)

    def settle(self, timeout: float = SETTLE_TIMEOUT) -> None:
        """Wait until every service1 pod answers on the first try and a trace comes out whole.

        After a rollout the Envoys still know the old pods' addresses until their next DNS
        refresh; a request sent to one is retried, which adds spans to its trace.
        """
        deadline = time.monotonic() + timeout
        seen: set[str] = set()
        streak, last = 0, "no reply"
        while time.monotonic() < deadline:
            current = self.pods(SERVICE1)
            try:
                reply = requests.get(echo_url(self.front_url, "settle"), timeout=30)
                pod = serving_pod(reply.text) if reply.ok else ""
                last = f"HTTP {reply.status_code} from {pod or '?'}, try {reply.headers.get('x-envoy-attempt-count')}"
                clean = reply.ok and pod in current and reply.headers.get("x-envoy-attempt-count", "1") == "1"
            except requests.RequestException as exc:
                clean, last = False, type(exc).__name__
            if not clean:
                seen, streak = set(), 0
                time.sleep(0.2)
                continue
            seen.add(pod)
            streak += 1
            if seen == current and streak >= 2 * len(current):
                try:
                    spans = find_trace(ZipkinClient(self.trace_proxy_url), reply.headers["x-request-id"])
                    last = f"a trace of {len(spans)} spans"
                except TraceProxyError as exc:  # its forward reached a pod on its way out
                    spans, last = [], str(exc)
                if len(spans) == SPANS_PER_ECHO:
                    return
                seen, streak = set(), 0
        raise AssertionError(f"the cluster did not settle within {timeout:g}s (last: {last})")


def cluster_stack_session(config: pytest.Config, state: Path):
    """The session's stack, for conftest's `cluster_stack` fixture: skips, saying why, where no kind
    cluster can run (no Docker daemon, no kind or kubectl)."""
    try:
        kind.preflight()
    except Exit as exc:
        pytest.skip(f"cluster end-to-end tests need Docker, kind and kubectl: {exc.message}")
    name = kind.DEFAULT_CLUSTER_NAME  # the name CI's diagnostics steps use
    created = not kind.exists(name)
    stack = ClusterStack(name, state, steady_port(), steady_port(), steady_port())
    try:
        stack.up()
        yield stack
    finally:
        if created and not config.getoption("keep_cluster"):
            stack.down()
            assert_nothing_left(name)
        else:
            stack.stop_forwards()


def assert_nothing_left(name: str) -> None:
    """After `inv down`: no cluster, no node container, no port-forward of it still running."""
    assert not kind.exists(name), f"`inv down` left the kind cluster {name!r}"
    containers = subprocess.run(["docker", "ps", "--all", "--quiet", "--filter", f"label=io.x-k8s.kind.cluster={name}"],
                                capture_output=True, text=True, check=True).stdout.split()
    assert not containers, f"`inv down` left the node containers {containers}"
    context = kind.context_name(name)
    forwards = [p.info["cmdline"] for p in psutil.process_iter(["cmdline"])
                if p.info["cmdline"] and "port-forward" in p.info["cmdline"] and context in p.info["cmdline"]]
    assert not forwards, f"`inv down` left port-forwards running: {forwards}"


def inv_at_a_terminal(stack: ClusterStack, *argv: str, answer: str, prompt: str, timeout: float = 300) -> str:
    """`inv ARGV` at a terminal (stdin and stdout), as a user runs it; `answer` is typed once
    `prompt` shows. Its whole output back (what the user saw)."""
    environ = {k: v for k, v in os.environ.items() if k not in secrets.KEY_VARIABLES}
    code, output = on_a_terminal(*argv, state_dir=None, columns=100, timeout=timeout, answer=(prompt, answer),
                                 env={STATE_DIR_ENV: str(stack.state)}, environ=environ)
    if code:
        pytest.fail(f"`inv {' '.join(argv)}` at a terminal failed (exit {code}):\n{output}")
    assert prompt in output, f"`inv {' '.join(argv)}` never asked {prompt!r}:\n{output}"
    return output
