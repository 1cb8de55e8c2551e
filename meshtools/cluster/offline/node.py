"""A cluster made from the offline node image: checks before creating it, and its DNS after.

CoreDNS as kubeadm configures it forwards every name outside the cluster to the node's
resolver. On the offline path nothing may leave the machine, so that forward goes: a pod asking
for a name outside the cluster gets an answer at once (SERVFAIL) instead of a query that leaves.
"""
from __future__ import annotations

import json
import re
from dataclasses import replace

from invoke.exceptions import Exit

from meshtools.cluster.image import BuildOptions
from meshtools.cluster.kubectl import Kubectl
from meshtools.cluster.offline.build import NODE_IMAGE
from meshtools.cluster.offline.docker_images import label
from meshtools.cluster.offline.rootfs import image_ref
from meshtools.shared.proc import run

# kubeadm's Corefile: `forward . /etc/resolv.conf {` … `}` (or a one-line forward).
FORWARD = re.compile(r"^[ \t]*forward[ \t]+\.[^\n{]*(\{[^}]*\})?[ \t]*\n", re.MULTILINE)


def node_image_of(cluster: str) -> str | None:
    """The image the cluster's control-plane node runs (kind names its container CLUSTER-control-plane)."""
    result = run(["docker", "container", "inspect", "--format", "{{.Config.Image}}", f"{cluster}-control-plane"],
                 capture=True, check=False)
    return result.stdout.strip() or None if result.returncode == 0 else None


def build_options_for(cluster: str, options: BuildOptions) -> BuildOptions:
    """For a cluster made from the offline node image, `inv build` builds on the Python base that
    `inv cluster.images` made, unless told otherwise, so nothing is pulled there either."""
    if options.base_image:
        return options
    node = node_image_of(cluster)
    if not node or not is_offline_image(node):
        return options
    return replace(options, base_image=image_ref("base"), network=options.network or "host")


def require_image(ref: str) -> None:
    """A node image kind would otherwise try to pull: say how to get it instead."""
    if run(["docker", "image", "inspect", "--format", "{{.Id}}", ref], capture=True, check=False).returncode == 0:
        return
    if ref.startswith(f"{NODE_IMAGE}:"):
        raise Exit(f"Docker has no {ref}: build it with `inv cluster.images` (or `inv up --offline`).")


def is_offline_image(ref: str) -> bool:
    return bool(label(ref))


def without_forward(corefile: str) -> str:
    return FORWARD.sub("", corefile)


def close_dns(kubectl: Kubectl) -> None:
    """Take the upstream forward out of CoreDNS' Corefile and restart CoreDNS with it."""
    system = Kubectl(kubectl.cluster, context=kubectl.context, namespace="kube-system")
    config = json.loads(system.run("get", "configmap", "coredns", "--output", "json", capture=True).stdout)
    corefile = config["data"]["Corefile"]
    closed = without_forward(corefile)
    if closed == corefile:
        return
    patch = json.dumps({"data": {"Corefile": closed}})
    system.run("patch", "configmap", "coredns", "--type", "merge", "--patch", patch, capture=True)
    system.run("rollout", "restart", "deployment/coredns", capture=True)
