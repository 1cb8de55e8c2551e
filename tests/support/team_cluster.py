"""A second kind cluster standing in for a team's shared cluster, and the registry it pulls from.

The registry is Debian's docker-registry (tests/support/registry.py finds the binary), run in
a container on kind's Docker network and published on 127.0.0.1:PORT, where `inv build
--registry 127.0.0.1:PORT` pushes. The node's containerd pulls that name from the container
instead (a certs.d `hosts.toml`, kind's documented local-registry set-up), so one image name
works on both sides. Nothing is pulled from outside: the registry's image is the tests' base
image plus the binary, and the node image is the offline one when `.ci/run` built it.

The tasks reach this cluster only as a shared cluster would be reached: `--context
kind-NAME --namespace N --registry R`, behind the context guard.
"""
from __future__ import annotations

import os
import secrets as tokens
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import requests
import yaml

from meshtools.cluster import kind
from meshtools.cluster.kubectl import Kubectl, current_context, restore_current_context
from meshtools.cluster.offline import build as offline_build
from meshtools.cluster.offline import node as offline_node
from meshtools.cluster.offline import versions
from meshtools.shared.topology import LOOPBACK
from tests.support import registry as registry_support
from tests.support.cluster_stack import OFFLINE_ENV, ClusterStack, steady_port

REGISTRY_PORT_IN_CONTAINER = 5000
START_TIMEOUT = 60.0
# kind's node config: containerd looks up per-registry hosts under certs.d (kind's own
# default in recent releases; stated here so an older node image behaves the same).
KIND_CONFIG = {
    "kind": "Cluster",
    "apiVersion": "kind.x-k8s.io/v1alpha4",
    "nodes": [{"role": "control-plane"}],
    "containerdConfigPatches": [
        '[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/etc/containerd/certs.d"\n'],
}
REGISTRY_DOCKERFILE = """\
FROM {base}
COPY docker-registry /usr/local/bin/docker-registry
COPY config.yml /etc/docker-registry/config.yml
USER 65534
ENTRYPOINT ["/usr/local/bin/docker-registry", "serve", "/etc/docker-registry/config.yml"]
"""


def docker(*argv: str, input: str | None = None) -> str:
    result = subprocess.run(["docker", *argv], input=input, capture_output=True, text=True, timeout=300)
    if result.returncode:
        raise RuntimeError(f"`docker {' '.join(argv)}` failed: {result.stderr.strip()[-1500:]}")
    return result.stdout.strip()


def node_image_for_this_machine() -> str | None:
    """The offline node image where `.ci/run` built it, else None (kind's default)."""
    return offline_build.node_ref(versions.KUBERNETES) if os.environ.get(OFFLINE_ENV) else None


@dataclass
class TeamCluster:
    name: str
    registry: str  # 127.0.0.1:PORT, what `--registry` takes
    base_image: str

    @property
    def context(self) -> str:
        return kind.context_name(self.name)

    def kubectl(self, namespace: str | None = None) -> Kubectl:
        return Kubectl(context=self.context, namespace=namespace)

    def tags(self, repository: str) -> list[str]:
        reply = requests.get(f"http://{self.registry}/v2/{repository}/tags/list", timeout=10)
        return [] if reply.status_code == 404 else (reply.raise_for_status() or reply.json().get("tags") or [])

    def node_images(self) -> str:
        """The image names the node's containerd holds for Kubernetes, one a line."""
        return docker("exec", f"{self.name}-control-plane", "ctr", "--namespace", "k8s.io", "images", "list", "--quiet")


def build_registry_image(base: str, binary: str, tag: str) -> None:
    with tempfile.TemporaryDirectory(prefix="team-registry-") as tmp:
        folder = Path(tmp)
        (folder / "docker-registry").write_bytes(Path(binary).read_bytes())
        (folder / "docker-registry").chmod(0o755)
        (folder / "config.yml").write_text(yaml.safe_dump({
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": "/tmp/registry"}},
            "http": {"addr": f"0.0.0.0:{REGISTRY_PORT_IN_CONTAINER}"},  # inside its container only
        }))
        (folder / "Dockerfile").write_text(REGISTRY_DOCKERFILE.format(base=base))
        docker("build", "--network", "none", "--tag", tag, str(folder))


def wait_for_registry(url: str, container: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/v2/", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        if docker("inspect", "--format", "{{.State.Running}}", container) != "true":
            raise RuntimeError(f"the registry container stopped: {docker('logs', container)[-1500:]}")
        time.sleep(0.1)
    raise RuntimeError(f"the registry did not answer on {url} within {START_TIMEOUT:g}s")


def point_containerd_at(node: str, registry: str, address: str) -> None:
    """Make the node's containerd pull `registry/...` from `address` (plain HTTP)."""
    folder = f"/etc/containerd/certs.d/{registry}"
    hosts = (f'server = "http://{registry}"\n\n[host."http://{address}"]\n'
             f'  capabilities = ["pull", "resolve"]\n')
    docker("exec", "-i", node, "sh", "-c", f"mkdir -p '{folder}' && cat > '{folder}/hosts.toml'", input=hosts)


def team_cluster(name: str, base: str) -> Iterator[TeamCluster]:
    """Create the cluster and its registry (its image built on `base`); delete both (and the
    registry's image) at the end."""
    try:
        kind.preflight()
    except Exception as exc:  # Exit: no Docker, kind or kubectl
        pytest.skip(f"shared-cluster tests need Docker, kind and kubectl: {getattr(exc, 'message', exc)}")
    binary = registry_support.binary()
    if not binary:
        pytest.skip("shared-cluster tests need Debian's docker-registry binary (.ci/run unpacks it into "
                    f".cache/docker-registry; or set {registry_support.REGISTRY_BIN_ENV})")
    node_image = node_image_for_this_machine()
    suffix = tokens.token_hex(3)
    registry_image, container = f"envoy-tracing-test/team-registry:{suffix}", f"{name}-registry-{suffix}"
    port = steady_port()
    previous = current_context()
    try:
        build_registry_image(base, binary, registry_image)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as config:
            yaml.safe_dump(KIND_CONFIG, config)
            config.flush()
            kind.create(name, config=config.name, node_image=node_image)
        kubectl = Kubectl(name)
        restore_current_context(kubectl, previous)
        if node_image and offline_node.is_offline_image(node_image):
            offline_node.close_dns(kubectl)
        docker("run", "--detach", "--name", container, "--network", "kind",
               "--publish", f"{LOOPBACK}:{port}:{REGISTRY_PORT_IN_CONTAINER}", registry_image)
        wait_for_registry(f"http://{LOOPBACK}:{port}", container)
        address = docker("inspect", "--format", '{{(index .NetworkSettings.Networks "kind").IPAddress}}', container)
        registry = f"{LOOPBACK}:{port}"
        point_containerd_at(f"{name}-control-plane", registry, f"{address}:{REGISTRY_PORT_IN_CONTAINER}")
        kubectl.wait_nodes_ready()
        yield TeamCluster(name, registry, base)
    finally:
        subprocess.run(["docker", "rm", "--force", "--volumes", container], capture_output=True)
        subprocess.run(["docker", "image", "rm", "--force", registry_image], capture_output=True)
        kind.delete(name)


@dataclass
class TeamStack(ClusterStack):
    """The stack as `inv up --context kind-NAME --namespace N --registry R` puts it on the team cluster."""

    context: str = ""
    namespace: str = ""
    registry: str = ""
    base_image: str = ""  # `inv build`'s base here: nothing is pulled

    def settings(self) -> dict[str, str]:
        return {"INVOKE_CLUSTER_BASE_IMAGE": self.base_image, "INVOKE_CLUSTER_BUILD_NETWORK": "host"}

    @property
    def kubectl(self) -> Kubectl:
        return Kubectl(context=self.context, namespace=self.namespace)

    def target_flags(self) -> list[str]:
        return ["--context", self.context, "--allow-context", "--namespace", self.namespace]
