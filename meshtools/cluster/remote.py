"""A shared cluster: a context the guard (meshtools.cluster.target) let through, and its namespace.

What differs from kind: the tasks name the context, its API server and the namespace before
they change anything; the image comes from a registry; `inv down` deletes only the objects
carrying the stack's labels in that namespace (never a cluster, never the namespace).
"""
from __future__ import annotations

from invoke.exceptions import Exit
from rich.console import Console

from meshtools.cluster import kind
from meshtools.cluster.kubectl import Kubectl
from meshtools.cluster.target import STACK_SELECTOR, Target

console = Console(highlight=False, soft_wrap=True)

# Every kind of object the stack creates (the manifests' Deployments, Services and
# ConfigMaps, the shared-cluster NetworkPolicy and the Honeycomb Secret); their ReplicaSets
# and Pods go with the Deployments.
STACK_KINDS = ("deployment", "service", "configmap", "networkpolicy", "secret")


def require_registry(target: Target) -> str:
    if not target.registry:
        raise Exit(f"Context {target.context!r} is a shared cluster, which pulls the image from a registry: "
                   "pass --registry REGISTRY (or set cluster.registry).")
    return target.registry


def connect(target: Target) -> Kubectl:
    """kubectl for the target, after saying which cluster and namespace the task is about to change."""
    kind.require_tools("kubectl")
    kubectl = Kubectl(context=target.context, namespace=target.namespace)
    server = kubectl.server()
    if server is None:
        raise Exit(f"Your kubeconfig has no context {target.context!r}: `kubectl config get-contexts` lists "
                   "the ones it has.")
    console.print(f"Target: context {target.context} · server {server} · namespace {target.namespace}")
    return kubectl


def delete_stack(kubectl: Kubectl) -> list[str]:
    """Delete the labelled objects in the kubectl's namespace and wait for them to go; their names."""
    result = kubectl.run("delete", ",".join(STACK_KINDS), "--selector", STACK_SELECTOR,
                         "--ignore-not-found", "--wait=true", "--output=name", capture=True)
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def deployed(kubectl: Kubectl) -> list[str]:
    """The stack's Deployments in the kubectl's namespace."""
    result = kubectl.run("get", "deployment", "--selector", STACK_SELECTOR, "--output=name", capture=True)
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]
