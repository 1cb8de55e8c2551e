"""The cluster stack, step by step: what `inv up` runs, top to bottom, and the tasks over it.

The steps (create_cluster, build_image, put_secret, roll_out, start_forwards) each assume
the tools, Docker's daemon and (but for create_cluster) the cluster are there. The entry
points below them (up, down, status, build, deploy, secret, forward) check what their step
needs, then run it; `up` checks once and runs every step in a row. Every kubectl call
carries `--context kind-<name>`.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import yaml
from invoke.exceptions import Exit
from rich.console import Console

from meshtools.cluster import forward as port_forward
from meshtools.cluster import image, kind, lock
from meshtools.cluster import secret as secrets
from meshtools.cluster.kubectl import Kubectl, current_context, restore_current_context
from meshtools.cluster.state import state_dir
from meshtools.shared.signals import sigterm_as_interrupt
from meshtools.shared.tracers import OPENTELEMETRY, ZIPKIN
from meshtools.shared.topology import (
    FRONT,
    FRONT_URL,
    LOOPBACK,
    MANIFESTS_DIR,
    SERVICE1,
    SERVICE2,
    TRACE_PROXY,
    TRACE_PROXY_URL,
)

console = Console(highlight=False, soft_wrap=True)  # no inserted line breaks: commands stay copyable

NOT_RUNNING = 3  # status's exit code when there is no cluster, as `inv local.status` and `systemctl status`
VARIANTS = {
    "default": MANIFESTS_DIR,  # our trace proxy
    "upstream-proxy": MANIFESTS_DIR / "upstream-proxy",  # the seed's honeycomb-opentracing-proxy
    OPENTELEMETRY: MANIFESTS_DIR / OPENTELEMETRY,  # our trace proxy, Envoy's OpenTelemetry tracer
}
# Rolled out in dependency order, so a slow one is named in the error.
DEPLOYMENTS = (TRACE_PROXY, SERVICE2, SERVICE1, FRONT)


def check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise Exit(f"Unknown variant {variant!r}: choose one of {', '.join(VARIANTS)}.")


def variant_for(variant: str, tracer: str) -> str:
    """The manifests for `--variant` with `--tracer`: the OpenTelemetry tracer is its own variant."""
    check_variant(variant)
    if tracer == ZIPKIN or variant == OPENTELEMETRY:
        return variant
    if variant != "default":
        raise Exit(f"The {variant} variant runs the Zipkin tracer only (its proxy takes no OTLP): "
                   f"drop --tracer {tracer}, or drop --variant {variant}.")
    return OPENTELEMETRY


# The steps, in the order `inv up` runs them.

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


def build_image(cluster: str, options: image.BuildOptions = image.BuildOptions(), load: bool = True) -> str:
    """Build the image unless one with this content tag exists, load it into the cluster; its ref."""
    ref, built = image.ensure_built(options=options)
    if not built:
        console.print(f"{ref} is up to date with the sources and base image; reusing it.")
    if load:
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


def summary(cluster_name: str, forwards: list[port_forward.Forward], has_key: bool) -> list[str]:
    """What `inv up` leaves running and where, as lines for the terminal."""
    ports = {f.service: f.local_port for f in forwards}
    front_url = f"http://{LOOPBACK}:{ports[FRONT]}" if FRONT in ports else FRONT_URL
    proxy_url = f"http://{LOOPBACK}:{ports[TRACE_PROXY]}" if TRACE_PROXY in ports else TRACE_PROXY_URL
    # --url only when a port differs from the default the view tasks assume.
    echo_url = "" if front_url == FRONT_URL else f" --url {front_url}"
    traces_url = "" if proxy_url == TRACE_PROXY_URL else f" --url {proxy_url}"
    honeycomb = (
        f"the trace proxy also sends them to Honeycomb (key in Secret {secrets.SECRET_NAME})"
        if has_key else "no Honeycomb key, so they stay in the trace proxy (set HONEYCOMB_API_KEY, then `inv secret`)"
    )
    return [
        f"Running on kind cluster {cluster_name!r} (kubectl --context {Kubectl(cluster_name).context}):",
        f"  front-envoy   {front_url}   try: inv echo --name friend{echo_url}",
        f"  trace proxy   {proxy_url}   Zipkin API: {proxy_url}/api/v2/traces",
        f"  traces: inv traces{traces_url} (latest as a waterfall); spans: {honeycomb}",
        "  status: inv cluster.status · stop everything: inv down",
    ]


# Entry points: check what the step needs, then run it.

def up(cluster: str, variant: str = "default", build_options: image.BuildOptions = image.BuildOptions(),
       front_port: int | None = None, trace_proxy_port: int | None = None) -> None:
    """The whole stack: cluster, image, secret, manifests, port-forwards; then where it all runs."""
    check_variant(variant)  # before anything is created, not when the manifests are finally applied
    kind.preflight()
    kubectl = create_cluster(cluster)  # from here on the cluster exists
    ref = build_image(cluster, build_options)
    # A key in the environment replaces the stored one (as `inv secret`); without one, an
    # existing Secret is kept and the prompt comes only when there is none.
    has_key = put_secret(kubectl, keep_existing=not secrets.key_from_env())
    roll_out(kubectl, variant, ref)
    forwards = start_forwards(kubectl, front_port, trace_proxy_port)
    console.print()
    for line in summary(cluster, forwards, has_key):
        console.print(line)


def _is_are(names: str) -> str:
    return "are" if " and " in names else "is"


def cluster_up(cluster: str) -> None:
    """Only the cluster: create it (unless it exists) and wait for its node."""
    kind.preflight()
    kubectl = create_cluster(cluster)
    console.print(f"Cluster {cluster!r} is ready (context {kubectl.context}). Next: inv build deploy")


def down(cluster: str) -> None:
    """Stop the port-forwards and delete the cluster; fine when it does not exist.

    No cluster (or no kind or docker, so there can be none) is not an error; a stopped Docker
    daemon is, since the cluster may still exist and come back with Docker.
    """
    stop_forwards()
    missing = kind.missing_runtime()
    if missing:
        console.print(f"{missing} {_is_are(missing)} not installed, so there is no kind cluster {cluster!r}; "
                      "nothing to delete.")
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


def status(cluster: str) -> None:
    """The cluster, its node, the pods and the port-forwards; Exit(3) when there is no cluster."""
    missing = kind.missing_runtime()
    if missing:
        console.print(f"{missing} {_is_are(missing)} not installed, so there is no kind cluster {cluster!r} "
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


def build(cluster: str, options: image.BuildOptions = image.BuildOptions(), load: bool = True) -> str:
    """Build (needs only Docker) and, with `load`, load into the cluster (needs kind and the cluster too)."""
    # Every missing tool in one message; without kind, building alone still works.
    kind.require_tools("docker", *(["kind"] if load else []),
                       otherwise="or build without loading it into kind: inv build --no-load" if load else "")
    kind.require_docker_daemon()
    if load:
        kind.require_cluster(cluster)
    return build_image(cluster, options, load)


def relock() -> None:
    pins = lock.write()
    console.print(f"Pinned {len(pins)} packages in {lock.LOCK_FILE}; the next `inv build` makes an image with them.")


def deploy(cluster: str, variant: str = "default", forward: bool = True) -> None:
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


def secret(cluster: str) -> None:
    kind.require_tools("kind", "kubectl")
    kind.require_cluster(cluster)
    put_secret(Kubectl(cluster))


def forward(cluster: str, stop: bool = False, front_port: int | None = None,
            trace_proxy_port: int | None = None) -> None:
    if stop:
        if not stop_forwards():
            console.print("No port-forwards were running.")
        return
    kind.require_tools("kind", "kubectl")
    kind.require_cluster(cluster)
    start_forwards(Kubectl(cluster), front_port, trace_proxy_port)
