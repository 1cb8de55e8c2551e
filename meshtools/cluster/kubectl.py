"""kubectl, always against one named context: the kind cluster's (`--context kind-NAME`) or
a shared cluster's that the guard in meshtools.cluster.target let through, with its namespace.

A developer whose current context points at production can run every task: no call here
relies on the current context, and `restore_current_context` undoes the switch that
`kind create cluster` makes.
"""
from __future__ import annotations

import os
from pathlib import Path

import yaml

from meshtools.cluster.kind import context_name
from meshtools.shared.proc import run

ROLLOUT_TIMEOUT = "180s"


class Kubectl:
    """kubectl bound to a context and, when given, a namespace: every call carries both."""

    def __init__(self, cluster: str | None = None, *, context: str | None = None, namespace: str | None = None):
        if not (cluster or context):
            raise ValueError("Kubectl needs a kind cluster name or a context")
        self.cluster = cluster
        self.context = context or context_name(cluster)
        self.namespace = namespace

    def argv(self, *args: str) -> list[str]:
        scope = ["--namespace", self.namespace] if self.namespace else []
        return ["kubectl", "--context", self.context, *scope, *args]

    def run(self, *args: str, input: str | None = None, capture: bool = False, check: bool = True, timeout=None):
        return run(self.argv(*args), input=input, capture=capture, check=check, timeout=timeout)

    def ok(self, *args: str) -> bool:
        return self.run(*args, capture=True, check=False, timeout=60).returncode == 0

    def wait_nodes_ready(self, timeout: str = "120s") -> None:
        self.run("wait", "--for=condition=Ready", "node", "--all", f"--timeout={timeout}")

    def apply_kustomization(self, directory: Path) -> None:
        self.run("apply", "-k", str(directory))

    def rollout_status(self, deployment: str, timeout: str = ROLLOUT_TIMEOUT) -> None:
        self.run("rollout", "status", f"deployment/{deployment}", f"--timeout={timeout}")

    def exists(self, kind: str, name: str) -> bool:
        return self.ok("get", kind, name, "-o", "name")

    def server(self) -> str | None:
        """The API server URL of the context, from the kubeconfig; None when it has no such context."""
        result = self.run("config", "view", "--minify", "--output=jsonpath={.clusters[0].cluster.server}",
                          capture=True, check=False, timeout=30)
        if result.returncode != 0:
            return None
        return result.stdout.strip() or None

    def use_context(self, context: str) -> None:
        self.run("config", "use-context", context, capture=True)


def kubeconfig_paths(environ=os.environ) -> list[Path]:
    value = environ.get("KUBECONFIG")
    if value:
        return [Path(p) for p in value.split(os.pathsep) if p]
    return [Path.home() / ".kube" / "config"]


def current_context(environ=os.environ) -> str | None:
    """The kubeconfig's current-context, read the way kubectl merges files (first set wins)."""
    for path in kubeconfig_paths(environ):
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(data, dict) and data.get("current-context"):
            return data["current-context"]
    return None


def restore_current_context(kubectl: Kubectl, previous: str | None) -> str | None:
    """Switch back to `previous` if `kind create cluster` moved the current context away."""
    if previous and previous != kubectl.context and current_context() != previous:
        kubectl.use_context(previous)
        return previous
    return None
