"""What the offline path builds, named once.

The Kubernetes release is the one choice; the control-plane, etcd, CoreDNS and pause images
follow from it (kubeadm lists them), and Envoy's release comes from manifests/base, as for the
online path.
"""
from __future__ import annotations

import re

import yaml
from invoke.exceptions import Exit

from meshtools.shared.topology import MANIFESTS_DIR

# 1.34: the newest release that still runs on cgroup v1 hosts without a kubelet flag, and
# with Debian's containerd 1.7.
KUBERNETES = "1.34.4"
KIND = "v0.30.0"  # kind's release for Kubernetes 1.34; its node image files are used at build time
DEBIAN_SUITE = "trixie"  # the node's and the images' Debian: containerd 1.7, systemd, Python 3.13
DEBIAN_MIRROR = "http://deb.debian.org/debian"
ZIPKIN = "3.6.1"  # io.zipkin:zipkin-server, the zipkin-ui variant's image tag too


def envoy_image() -> str:
    """The Envoy image the manifests name (envoyproxy/envoy:vX.Y.Z), read from manifests/base."""
    kustomization = yaml.safe_load((MANIFESTS_DIR / "base" / "kustomization.yaml").read_text())
    tag = next(image["newTag"] for image in kustomization["images"] if image["name"] == "envoyproxy/envoy")
    return f"envoyproxy/envoy:{tag}"


def zipkin_image() -> str:
    return f"openzipkin/zipkin:{ZIPKIN}"


def check_kubernetes(version: str) -> str:
    """'1.34.4' or 'v1.34.4' → '1.34.4'; anything else ends in a clear error."""
    match = re.fullmatch(r"v?(1\.(\d+)\.\d+)", version.strip())
    if not match:
        raise Exit(f"--kubernetes takes a release like {KUBERNETES}, not {version!r}")
    return match[1]
