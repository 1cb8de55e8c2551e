"""A shared cluster: a context the guard (meshtools.cluster.target) let through, and its namespace.

What differs from kind: the tasks name the context, its API server and the namespace before
they change anything; the image comes from a registry; `inv down` deletes only the objects
carrying the stack's labels in that namespace (never a cluster), and the namespace itself only
when the tasks created it and nothing else lives there.
"""
from __future__ import annotations

import json

from invoke.exceptions import Exit
from rich.console import Console

from meshtools.cluster import kind
from meshtools.cluster.kubectl import Kubectl
from meshtools.cluster.target import STACK_LABELS, STACK_SELECTOR, Target

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


# What Kubernetes itself puts in every namespace: not a reason to keep one.
_BUILT_IN = {"configmap/kube-root-ca.crt", "serviceaccount/default"}
# Kinds someone else's work in a namespace would show up as.
_OTHER_KINDS = "all,configmap,secret,persistentvolumeclaim,networkpolicy,ingress,serviceaccount"


def created_namespace(kubectl: Kubectl) -> bool:
    """Whether the kubectl's namespace is one the tasks created (labelled as the stack's)."""
    result = kubectl.run("get", "namespace", kubectl.namespace, "-o", "json", capture=True, check=False, timeout=60)
    if result.returncode:
        return False
    try:
        labels = json.loads(result.stdout).get("metadata", {}).get("labels") or {}
    except ValueError:
        return False
    return all(labels.get(key) == value for key, value in STACK_LABELS.items())


def others_in_namespace(kubectl: Kubectl) -> list[str]:
    """Objects in the namespace that are not the stack's (nor Kubernetes' own defaults)."""
    managed_by = "app.kubernetes.io/managed-by"
    result = kubectl.run("get", _OTHER_KINDS, "--selector", f"{managed_by}!={STACK_LABELS[managed_by]}",
                         "-o", "name", capture=True, timeout=60)
    names = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    return [name for name in names if name not in _BUILT_IN]


def delete_namespace_if_ours(kubectl: Kubectl) -> str:
    """Delete the namespace when the tasks created it and it holds nothing else; what happened, as a line."""
    namespace = kubectl.namespace
    if not created_namespace(kubectl):
        return f"Namespace {namespace} stays: the tasks did not create it."
    others = others_in_namespace(kubectl)
    if others:
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        return f"Namespace {namespace} stays: it holds other things too ({shown})."
    kubectl.run("delete", "namespace", namespace, "--wait=true", capture=True, timeout=300)
    return f"Deleted namespace {namespace} (created by the tasks)."
