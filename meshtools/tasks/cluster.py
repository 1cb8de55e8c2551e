"""The kind cluster target: `inv cluster.up`, `inv build deploy`, then `inv echo`/`load`/`traces`.

`cluster.up|down|status` form the `cluster` collection; `build`, `deploy`, `secret` and
`forward` are top-level tasks (tasks.py adds them). The cluster name resolves as
--name flag → invoke config `cluster.name` → envoy-tracing. Every kubectl call carries
`--context kind-<name>`.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import yaml
from invoke import Collection, task
from invoke.exceptions import Exit
from rich.console import Console

from meshtools import forward as port_forward
from meshtools import image, kind
from meshtools import secret as secrets
from meshtools.cluster_state import state_dir
from meshtools.kubectl import Kubectl, current_context, restore_current_context
from meshtools.signals import sigterm_as_interrupt
from meshtools.tasks import options
from meshtools.topology import (
    FRONT,
    FRONT_LOCAL_PORT,
    FRONT_URL,
    LOOPBACK,
    MANIFESTS_DIR,
    SERVICE1,
    SERVICE2,
    TRACE_PROXY,
    TRACE_PROXY_PORT,
    TRACE_PROXY_URL,
)

console = Console(highlight=False, soft_wrap=True)  # no inserted line breaks: commands stay copyable

NAME_HELP = f"kind cluster name (default: invoke config cluster.name, else {kind.DEFAULT_CLUSTER_NAME})"
FRONT_PORT_HELP = f"local port for front-envoy on {LOOPBACK} (default {FRONT_LOCAL_PORT})"
TRACE_PROXY_PORT_HELP = f"local port for the trace proxy on {LOOPBACK} (default {TRACE_PROXY_PORT})"
NOT_RUNNING = 3  # status's exit code when there is no cluster, as `inv local.status` and `systemctl status`
VARIANTS = {
    "default": MANIFESTS_DIR,  # our trace proxy
    "upstream-proxy": MANIFESTS_DIR / "upstream-proxy",  # the seed's honeycomb-opentracing-proxy
}
# Rolled out in dependency order, so a slow one is named in the error.
DEPLOYMENTS = (TRACE_PROXY, SERVICE2, SERVICE1, FRONT)


def cluster_name(c, name: str | None = None) -> str:
    configured = (c.config.get("cluster") or {}).get("name")
    return name or configured or kind.DEFAULT_CLUSTER_NAME


@task(help={"name": NAME_HELP})
def up(c, name=None):
    """Create the kind cluster from kind-config.yaml (unless it exists) and wait for its node."""
    cluster = cluster_name(c, name)
    kind.preflight()
    kubectl = Kubectl(cluster)
    previous = current_context()
    if kind.create(cluster):
        restored = restore_current_context(kubectl, previous)
        if restored:
            console.print(f"Kept your current kubectl context {restored!r}; the tasks use {kubectl.context}.")
    else:
        console.print(f"Cluster {cluster!r} already exists.")
    kubectl.wait_nodes_ready()
    console.print(f"Cluster {cluster!r} is ready (context {kubectl.context}). Next: inv build deploy")


@task(help={"name": NAME_HELP})
def down(c, name=None):
    """Stop the port-forwards and delete the kind cluster (fine when it does not exist).

    Exits 0 when there is no cluster, also when kind or docker is not installed (then there can
    be none). Exits 1 when Docker's daemon is stopped: the cluster may still exist and come back
    with Docker, so start Docker and run it again.
    """
    cluster = cluster_name(c, name)
    for stopped in port_forward.stop(state_dir()):
        console.print(f"Stopped port-forward 127.0.0.1:{stopped.local_port} → svc/{stopped.service}.")
    missing = kind.missing_runtime()
    if missing:
        console.print(f"{missing} is not installed, so there is no kind cluster {cluster!r}; nothing to delete.")
        return
    if not kind.docker_daemon_answers():
        raise Exit(
            f"Docker's daemon is not answering, so kind cannot check or delete cluster {cluster!r} "
            f"(its node comes back when Docker starts): {kind.START_DOCKER}, then run this again."
        )
    if kind.delete(cluster):
        console.print(f"Deleted cluster {cluster!r}.")
    else:
        console.print(f"No cluster {cluster!r}; nothing to delete.")


@task(help={"name": NAME_HELP})
def status(c, name=None):
    """Show the cluster, its node, the pods and what is port-forwarded.

    Exits 3 when the cluster does not exist or is not running (also when kind or docker is not
    installed, or Docker's daemon is stopped), like `inv local.status` when nothing runs.
    """
    cluster = cluster_name(c, name)
    missing = kind.missing_runtime()
    if missing:
        console.print(f"{missing} is not installed, so there is no kind cluster {cluster!r} "
                      "(`inv cluster.up` says how to install it).")
        raise Exit(code=NOT_RUNNING)
    if not kind.docker_daemon_answers():
        console.print(f"Docker's daemon is not answering, so cluster {cluster!r} is not running: {kind.START_DOCKER}.")
        raise Exit(code=NOT_RUNNING)
    if not kind.exists(cluster):
        console.print(f"No cluster {cluster!r} (`inv cluster.up` creates it).")
        raise Exit(code=NOT_RUNNING)
    kind.require_tools("kubectl")
    kubectl = Kubectl(cluster)
    console.print(f"[bold]Cluster[/] {cluster} (context {kubectl.context})")
    kubectl.run("get", "nodes")
    console.print("[bold]Pods[/]")
    kubectl.run("get", "pods")
    forwards = port_forward.status(state_dir())
    console.print("[bold]Forwarded[/]" if forwards else "Nothing forwarded (`inv forward`).")
    for forward, up_ in forwards:
        state = "answering" if up_ else "[red]not running[/] (`inv forward` restarts it)"
        console.print(f"  127.0.0.1:{forward.local_port} → svc/{forward.service}:{forward.remote_port}  {state}")


@task(help={"name": NAME_HELP, "rebuild": "build even if an image with this content tag exists"})
def build(c, name=None, rebuild=False):
    """Build the service image, tagged by its content, and load it into the kind cluster."""
    cluster = cluster_name(c, name)
    kind.preflight()
    kind.require_cluster(cluster)
    ref, built = image.ensure_built(rebuild=rebuild)
    if not built:
        console.print(f"{ref} is up to date with the sources; reusing it.")
    kind.load_image(ref, cluster)
    image.record(ref)
    console.print(ref)


def render_kustomization(directory: Path, variant_dir: Path, ref: str) -> Path:
    """A throwaway kustomization over the committed one that only sets the image tag."""
    name, tag = ref.rsplit(":", 1)
    (directory / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        # kustomize only accepts relative paths to other kustomizations.
        "resources": [os.path.relpath(variant_dir, directory)],
        "images": [{"name": image.IMAGE_NAME, "newName": name, "newTag": tag}],
    }, sort_keys=False))
    return directory


def ensure_secret(kubectl: Kubectl) -> None:
    if secrets.secret_exists(kubectl):
        return
    key = secrets.key_from_env() or secrets.prompt_for_key()
    if secrets.store_key(kubectl, key):
        console.print(f"Stored the Honeycomb key in Secret {secrets.SECRET_NAME}.")
    else:
        console.print(secrets.NO_KEY_MESSAGE)


@task(help={
    "name": NAME_HELP,
    "variant": "manifests to apply: default (our trace proxy) or upstream-proxy (the seed's)",
    "forward": "port-forward front-envoy and the trace proxy afterwards (default: yes)",
})
def deploy(c, name=None, variant="default", forward=True):
    """Apply the manifests with the image from `inv build`, wait for every rollout, show the pods."""
    cluster = cluster_name(c, name)
    if variant not in VARIANTS:
        raise Exit(f"Unknown variant {variant!r}: choose one of {', '.join(VARIANTS)}.")
    kind.require_tools("kind", "kubectl")
    kind.require_cluster(cluster)
    ref = image.last_built()
    if not ref:
        raise Exit("No image built yet: run `inv build` first (or `inv build deploy`).")
    kubectl = Kubectl(cluster)
    ensure_secret(kubectl)
    with tempfile.TemporaryDirectory(dir=state_dir(), prefix="deploy-") as tmp:
        kubectl.apply_kustomization(render_kustomization(Path(tmp), VARIANTS[variant], ref))
    for deployment in DEPLOYMENTS:
        kubectl.rollout_status(deployment)
    kubectl.run("get", "pods")
    if forward:
        _start_forwards(kubectl)


def _start_forwards(kubectl: Kubectl, front_port: int | None = None, trace_proxy_port: int | None = None) -> None:
    # SIGTERM as Ctrl-C, so a killed task stops the forwards it had started.
    with sigterm_as_interrupt():
        forwards = port_forward.start(
            kubectl, port_forward.default_forwards(front_port, trace_proxy_port), state_dir()
        )
    for f in forwards:
        console.print(f"Forwarding 127.0.0.1:{f.local_port} → svc/{f.service}:{f.remote_port}")
    if not front_port and not trace_proxy_port:
        console.print(f"Try: inv echo --name friend   (or curl {FRONT_URL}/echo/friend; spans: {TRACE_PROXY_URL})")


@task(help={"name": NAME_HELP})
def secret(c, name=None):
    """Create or update the honeycomb-writekey Secret from HONEYCOMB_API_KEY or a hidden prompt."""
    cluster = cluster_name(c, name)
    kind.require_tools("kind", "kubectl")
    kind.require_cluster(cluster)
    kubectl = Kubectl(cluster)
    key = secrets.key_from_env() or secrets.prompt_for_key()
    if not secrets.store_key(kubectl, key):
        console.print(secrets.NO_KEY_MESSAGE)
        return
    console.print(f"Stored the Honeycomb key in Secret {secrets.SECRET_NAME}.")
    if secrets.restart_trace_proxy(kubectl):
        console.print(f"Restarted deployment/{TRACE_PROXY} so it reads the new key.")


@task(help={
    "name": NAME_HELP,
    "stop": "stop the recorded port-forwards instead of starting them",
    "front_port": FRONT_PORT_HELP,
    "trace_proxy_port": TRACE_PROXY_PORT_HELP,
})
def forward(c, name=None, stop=False, front_port=None, trace_proxy_port=None):
    """Port-forward front-envoy and the trace proxy to their usual local ports, in the background."""
    front_port = options.port(front_port, "--front-port")
    trace_proxy_port = options.port(trace_proxy_port, "--trace-proxy-port")
    if stop:
        stopped = port_forward.stop(state_dir())
        for f in stopped:
            console.print(f"Stopped port-forward 127.0.0.1:{f.local_port} → svc/{f.service}.")
        if not stopped:
            console.print("No port-forwards were running.")
        return
    cluster = cluster_name(c, name)
    kind.require_tools("kind", "kubectl")
    kind.require_cluster(cluster)
    _start_forwards(Kubectl(cluster), front_port, trace_proxy_port)


ns = Collection("cluster")
ns.add_task(up)
ns.add_task(down)
ns.add_task(status)
ns.configure({"cluster": {"name": kind.DEFAULT_CLUSTER_NAME}})

# Top-level tasks: tasks.py adds each with ns.add_task(...).
TOP_LEVEL_TASKS = (build, deploy, secret, forward)
