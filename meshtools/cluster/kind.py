"""The kind cluster: tool checks, create (idempotent), delete (safe when absent), image load.

The kubectl context of a cluster NAME is `kind-NAME`; every kubectl call names it
(see meshtools.cluster.kubectl), so a developer's current context is never used.
"""
from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

from invoke.exceptions import Exit

from meshtools.cluster import image
from meshtools.cluster.offline import cache as offline_cache
from meshtools.shared.proc import describe, last_line, ok, run
from meshtools.shared.topology import PROJECT_ROOT

DEFAULT_CLUSTER_NAME = "envoy-tracing"
KIND_CONFIG = PROJECT_ROOT / "kind-config.yaml"
CREATE_WAIT = "120s"  # kind waits this long for the control plane to be Ready

# How to install each tool, by platform.system(): the user's own OS first, never another's.
INSTALL_HINTS = {
    "Linux": {
        "docker": "Docker Engine (`sudo apt-get install docker.io` on Debian and Ubuntu, or "
                  "https://docs.docker.com/engine/install/)",
        "kind": "kind (the release binary: https://kind.sigs.k8s.io/docs/user/quick-start/"
                "#installing-from-release-binaries)",
        "kubectl": "kubectl (https://kubernetes.io/docs/tasks/tools/install-kubectl-linux/)",
    },
    "Darwin": {
        "docker": "Docker Desktop (`brew install --cask docker`, then start it)",
        "kind": "kind (`brew install kind`)",
        "kubectl": "kubectl (`brew install kubectl`)",
    },
    "Windows": {
        "docker": "Docker Desktop (`winget install Docker.DockerDesktop`)",
        "kind": "kind (`winget install Kubernetes.kind`)",
        "kubectl": "kubectl (`winget install Kubernetes.kubectl`)",
    },
}
OTHER_HINTS = {
    "docker": "Docker (https://docs.docker.com/get-docker/)",
    "kind": "kind (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)",
    "kubectl": "kubectl (https://kubernetes.io/docs/tasks/tools/)",
}


def install_hint(tool: str, system: str | None = None) -> str:
    """How to install `tool` on this OS (`system` as platform.system() names it)."""
    return INSTALL_HINTS.get(system or platform.system(), OTHER_HINTS)[tool]


def missing_tools(*tools: str) -> list[str]:
    use_offline_tools()
    return [tool for tool in tools if shutil.which(tool) is None]


def use_offline_tools() -> None:
    """Let this process find the kind and kubectl that `inv cluster.images` built, after PATH's own."""
    built = offline_cache.cache_dir() / "bin"
    path = os.environ.get("PATH", "")
    if (built / "kind").exists() and str(built) not in path.split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join(filter(None, [path, str(built)]))


def context_name(cluster: str) -> str:
    return f"kind-{cluster}"


def require_tools(*tools: str, otherwise: str = "") -> None:
    """End the task with one line naming every missing tool and how to install it on this OS.

    `otherwise`: what works without kind, said when kind is among the missing.
    """
    missing = missing_tools(*tools)
    if missing:
        alternative = f"; {otherwise}" if otherwise and "kind" in missing else ""
        raise Exit(f"{joined(missing)} {'is' if len(missing) == 1 else 'are'} not on PATH: install "
                   f"{'; '.join(install_hint(tool) for tool in missing)}{alternative}.")


def joined(names: list[str]) -> str:
    """'kind', 'kind and docker', 'docker, kind and kubectl'."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


START_DOCKER = "start Docker Desktop, or `sudo systemctl start docker` on Linux"


def docker_daemon_answers() -> bool:
    return ok(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=30)


def require_docker_daemon() -> None:
    """The client alone is not enough: kind needs a daemon that answers."""
    if not docker_daemon_answers():
        raise Exit(
            "Docker is installed but its daemon is not answering (`docker info` failed): "
            f"{START_DOCKER}, then try again."
        )


def missing_runtime() -> str | None:
    """The tools (kind, docker) whose absence means no kind cluster can exist here, named together.

    kind keeps a cluster's nodes as Docker containers, so without either tool there is none.
    """
    missing = missing_tools("kind", "docker")
    return joined(missing) if missing else None


def preflight() -> None:
    require_tools("docker", "kind", "kubectl")
    require_docker_daemon()


def clusters() -> list[str]:
    # With no clusters kind prints a notice on stderr and nothing on stdout.
    result = run(["kind", "get", "clusters"], capture=True)
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def exists(cluster: str) -> bool:
    return cluster in clusters()


def create(cluster: str, config=KIND_CONFIG, node_image: str | None = None) -> bool:
    """Create the cluster unless it exists (from `node_image` when given). True when it was created now."""
    if exists(cluster):
        return False
    argv = ["kind", "create", "cluster", "--config", str(config), "--name", cluster, "--wait", CREATE_WAIT]
    if node_image:
        argv += ["--image", node_image]
    run(argv)
    return True


def delete(cluster: str) -> bool:
    """Delete the cluster if it exists. True when it was deleted now."""
    if not exists(cluster):
        return False
    run(["kind", "delete", "cluster", "--name", cluster])
    return True


def require_cluster(cluster: str) -> None:
    if not exists(cluster):
        raise Exit(f"There is no kind cluster named {cluster!r}: run `inv cluster.up` first.")


def load_image(ref: str, cluster: str) -> None:
    """Copy a locally built image into the cluster's node (no registry involved)."""
    argv = ["kind", "load", "docker-image", ref, "--name", cluster]
    result = run(argv, capture=True, check=False)
    sys.stdout.write(result.stdout)
    if result.returncode == 0:
        return
    if "content digest" not in result.stderr:
        raise Exit(f"`{describe(argv)}` failed (exit {result.returncode}): {last_line(result.stderr)}")
    # Docker's containerd image store (the default since Docker 29) can save an image whose
    # index names content it does not hold, which the node's `ctr import` rejects. kind's
    # documented workaround: save only this platform (image.save_archive) and load the archive.
    print("kind load docker-image hit the containerd image store issue; loading an image archive instead.")
    with tempfile.TemporaryDirectory(prefix="envoy-tracing-image-") as tmp:
        archive = Path(tmp) / "image.tar"
        image.save_archive(ref, archive)
        run(["kind", "load", "image-archive", str(archive), "--name", cluster])
