"""Which cluster the tasks act on, and the guard that keeps them off the wrong one.

With no `--context` the target is the project's kind cluster, exactly as before. Any other
context (a shared EKS, GKE, AKS or company cluster) is used only when the user names it with
`--context` AND it is listed in the invoke setting `cluster.allowed_contexts` (or confirmed
once with `--allow-context`), as Tilt's `allow_k8s_contexts`. The kubeconfig's current
context is never read to pick a target. Everything here runs before any tool is called, so a
refused context costs nothing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from invoke.exceptions import Exit

from meshtools.cluster.kind import context_name

# On a shared cluster the stack gets a namespace of its own unless told otherwise.
DEFAULT_REMOTE_NAMESPACE = "envoy-tracing"

# Every object the tasks create carries these labels; `inv down` on a shared cluster deletes
# exactly what matches them in its namespace. part-of is the base's own label; managed-by
# marks what the tasks (not a hand-run `kubectl apply -k`) put there.
STACK_LABELS = {
    "app.kubernetes.io/part-of": "envoy-tracing",
    "app.kubernetes.io/managed-by": "envoy-tracing-tasks",
}
STACK_SELECTOR = ",".join(f"{key}={value}" for key, value in STACK_LABELS.items())

# RFC 1123 label, as Kubernetes requires of a namespace name.
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
# host[:port][/path], as `docker push` accepts it: no scheme, no tag.
_REGISTRY = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]+([._/-][a-z0-9]+)*)?")


@dataclass(frozen=True)
class Target:
    """A kubectl context, the namespace the stack lives in, and the registry its image comes from."""

    context: str
    namespace: str | None  # None: the context's own default (the kind target, as before)
    registry: str | None
    cluster: str | None  # the kind cluster's name; None on a shared cluster

    @property
    def is_kind(self) -> bool:
        return self.cluster is not None


def check_namespace(namespace: str | None) -> str | None:
    if namespace is None:
        return None
    if not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace):
        raise Exit(f"--namespace must be a Kubernetes namespace name (lower-case letters, digits and '-', "
                   f"at most 63), got {namespace!r}.")
    return namespace


def check_registry(registry: str | None) -> str | None:
    """The registry without a trailing slash; refused when it has a scheme, a tag or spaces."""
    if registry is None:
        return None
    value = str(registry).strip().rstrip("/")
    if "://" in value:
        raise Exit(f"--registry takes a host[:port][/path] without a scheme, e.g. "
                   f"{value.split('://', 1)[1] or 'registry.example.com'}, got {registry!r}.")
    if not _REGISTRY.fullmatch(value):
        raise Exit(f"--registry must be a registry host[:port][/path] such as 127.0.0.1:5000 or "
                   f"ghcr.io/you, got {registry!r}.")
    return value


def allowed_list(value) -> list[str]:
    """cluster.allowed_contexts from a config file (a list) or INVOKE_CLUSTER_ALLOWED_CONTEXTS (a string)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(part) for part in value]


def resolve(cluster: str, context: str | None = None, namespace: str | None = None,
            registry: str | None = None, allowed_contexts=None, allow_context: bool = False) -> Target:
    """The target the flags and settings name; Exit before any call when the guard refuses it."""
    namespace = check_namespace(namespace or None)
    registry = check_registry(registry or None)
    kind_context = context_name(cluster)
    if not context or context == kind_context:
        return Target(kind_context, namespace, registry, cluster)
    if context not in allowed_list(allowed_contexts) and not allow_context:
        raise Exit(
            f"Context {context!r} is not the project's kind cluster and not in cluster.allowed_contexts: "
            f"add it there (invoke.yaml: `cluster: {{allowed_contexts: [{context}]}}`) or pass --allow-context "
            "to use it this once."
        )
    return Target(context, namespace or DEFAULT_REMOTE_NAMESPACE, registry, None)
