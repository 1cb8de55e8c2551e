"""The kind cluster target: `inv cluster.up`, `inv build deploy`, then `inv echo`/`load`/`traces`.

`cluster.up|down|status` form the `cluster` collection; `build`, `deploy`, `secret` and
`forward` are top-level tasks (tasks.py adds them). The cluster name resolves as
--name flag → invoke config `cluster.name` → envoy-tracing. Every kubectl call carries
`--context kind-<name>`.

Each task checks the tools, Docker's daemon and the cluster, then calls a plain step function
that assumes them; `inv up` (meshtools.tasks.stack) checks once and calls the steps in a row.
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


def check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise Exit(f"Unknown variant {variant!r}: choose one of {', '.join(VARIANTS)}.")


# Steps: each assumes the tools, the daemon and (but for create_cluster) the cluster are there.

def create_cluster(cluster: str) -> Kubectl:
    """Create the cluster unless it exists, keep the developer's kubectl context, wait for the node."""
    kubectl = Kubectl(cluster)
    previous = current_context()
    if kind.create(cluster):
        restored = restore_current_context(kubectl, previous)
        if restored:
            console.print(f"Kept your current kubectl context {restored!r}; the tasks use {kubectl.context}.")
    else:
        console.print(f"Cluster {cluster!r} already exists.")
    kubectl.wait_nodes_ready()
    return kubectl


def build_image(cluster: str, rebuild: bool = False) -> str:
    """Build the image unless one with this content tag exists, load it into the cluster; its ref."""
    ref, built = image.ensure_built(rebuild=rebuild)
    if not built:
        console.print(f"{ref} is up to date with the sources; reusing it.")
    kind.load_image(ref, cluster)
    image.record(ref)
    console.print(ref)
    return ref


def put_secret(kubectl: Kubectl, keep_existing: bool = False) -> bool:
    """Store the key from the environment or a hidden prompt; whether the Secret holds a key after.

    With `keep_existing`, an existing Secret is left as it is and nobody is asked. The trace
    proxy is restarted only when the Secret changed: a restart empties its span store.
    """
    if keep_existing and secrets.secret_exists(kubectl):
        return True
    key = secrets.key_from_env() or secrets.prompt_for_key()
    if not key:
        console.print(secrets.NO_KEY_MESSAGE)
        return False
    if not secrets.apply_secret(kubectl, key):
        console.print(f"Secret {secrets.SECRET_NAME} already holds this Honeycomb key; nothing to restart.")
        return True
    console.print(f"Stored the Honeycomb key in Secret {secrets.SECRET_NAME}.")
    if secrets.restart_trace_proxy(kubectl):
        console.print(f"Restarted deployment/{TRACE_PROXY} so it reads the new key.")
    return True


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


def roll_out(kubectl: Kubectl, variant: str, ref: str) -> None:
    """Apply the variant's manifests with image `ref`, wait for every rollout, show the pods."""
    with tempfile.TemporaryDirectory(dir=state_dir(), prefix="deploy-") as tmp:
        kubectl.apply_kustomization(render_kustomization(Path(tmp), VARIANTS[variant], ref))
    for deployment in DEPLOYMENTS:
        kubectl.rollout_status(deployment)
    kubectl.run("get", "pods")


def start_forwards(
    kubectl: Kubectl, front_port: int | None = None, trace_proxy_port: int | None = None
) -> list[port_forward.Forward]:
    # SIGTERM as Ctrl-C, so a killed task stops the forwards it had started.
    with sigterm_as_interrupt():
        forwards = port_forward.start(
            kubectl, port_forward.default_forwards(front_port, trace_proxy_port), state_dir()
        )
    for f in forwards:
        console.print(f"Forwarding {LOOPBACK}:{f.local_port} → svc/{f.service}:{f.remote_port}")
    if not front_port and not trace_proxy_port:
        console.print(f"Try: inv echo --name friend   (or curl {FRONT_URL}/echo/friend; spans: {TRACE_PROXY_URL})")
    return forwards


def stop_forwards() -> list[port_forward.Forward]:
    stopped = port_forward.stop(state_dir())
    for f in stopped:
        console.print(f"Stopped port-forward {LOOPBACK}:{f.local_port} → svc/{f.service}.")
    return stopped


# Tasks: check what the step needs, then run it.

@task(help={"name": NAME_HELP})
def up(c, name=None):
    """Create the kind cluster from kind-config.yaml (unless it exists) and wait for its node."""
    cluster = cluster_name(c, name)
    kind.preflight()
    kubectl = create_cluster(cluster)
    console.print(f"Cluster {cluster!r} is ready (context {kubectl.context}). Next: inv build deploy")


@task(help={"name": NAME_HELP})
def down(c, name=None):
    """Stop the port-forwards and delete the kind cluster (fine when it does not exist).

    Exits 0 when there is no cluster, also when kind or docker is not installed (then there can
    be none). Exits 1 when Docker's daemon is stopped: the cluster may still exist and come back
    with Docker, so start Docker and run it again.
    """
    cluster = cluster_name(c, name)
    stop_forwards()
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
        console.print(f"  {LOOPBACK}:{forward.local_port} → svc/{forward.service}:{forward.remote_port}  {state}")


@task(help={"name": NAME_HELP, "rebuild": "build even if an image with this content tag exists"})
def build(c, name=None, rebuild=False):
    """Build the service image, tagged by its content, and load it into the kind cluster."""
    cluster = cluster_name(c, name)
    kind.preflight()
    kind.require_cluster(cluster)
    build_image(cluster, rebuild)


@task(help={
    "name": NAME_HELP,
    "variant": "manifests to apply: default (our trace proxy) or upstream-proxy (the seed's)",
    "forward": "port-forward front-envoy and the trace proxy afterwards (default: yes)",
})
def deploy(c, name=None, variant="default", forward=True):
    """Apply the manifests with the image from `inv build`, wait for every rollout, show the pods."""
    cluster = cluster_name(c, name)
    check_variant(variant)
    kind.require_tools("kind", "kubectl")
    kind.require_cluster(cluster)
    ref = image.last_built()
    if not ref:
        raise Exit("No image built yet: run `inv build` first (or `inv build deploy`).")
    kubectl = Kubectl(cluster)
    put_secret(kubectl, keep_existing=True)
    roll_out(kubectl, variant, ref)
    if forward:
        start_forwards(kubectl)


@task(help={"name": NAME_HELP})
def secret(c, name=None):
    """Create or update the honeycomb-writekey Secret from HONEYCOMB_API_KEY or a hidden prompt.

    Restarts the trace proxy (which empties its span store) only when the key changed.
    """
    cluster = cluster_name(c, name)
    kind.require_tools("kind", "kubectl")
    kind.require_cluster(cluster)
    put_secret(Kubectl(cluster))


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
        if not stop_forwards():
            console.print("No port-forwards were running.")
        return
    cluster = cluster_name(c, name)
    kind.require_tools("kind", "kubectl")
    kind.require_cluster(cluster)
    start_forwards(Kubectl(cluster), front_port, trace_proxy_port)


ns = Collection("cluster")
ns.add_task(up)
ns.add_task(down)
ns.add_task(status)
ns.configure({"cluster": {"name": kind.DEFAULT_CLUSTER_NAME}})

# Top-level tasks: tasks.py adds each with ns.add_task(...).
TOP_LEVEL_TASKS = (build, deploy, secret, forward)
