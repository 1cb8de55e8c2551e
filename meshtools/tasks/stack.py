"""The whole stack in one step each, on whichever target is meant: `inv up` and `inv down`.

The local mesh unless `--cluster`, a flag only the cluster takes (`--name`, `--context`,
`--registry`, …), the invoke setting `target: cluster`, or a configured shared cluster
(`cluster.context`): a newcomer's `inv up` starts what `inv local.up` starts, and `inv down`
never leaves a local mesh running.

On the cluster, `inv up` runs the steps behind the cluster tasks in order (cluster.up, build,
secret, deploy, forward), so it does what those five commands do, but checks the tools,
Docker's daemon and the cluster once instead of in every step (meshtools.cluster.stack.up);
`inv down` is cluster.down, which stops the port-forwards and then deletes the cluster.
"""
from __future__ import annotations

from dataclasses import replace

from invoke import Exit, task

from meshtools.cluster import stack
from meshtools.cluster.offline import build as offline_build
from meshtools.tasks import options
from meshtools.tasks.cli import MeshTask
from meshtools.tasks.options import (
    FRONT_PORT_HELP,
    KUBERNETES_HELP,
    NAME_HELP,
    NODE_IMAGE_HELP,
    OFFLINE_HELP,
    OTLP_PORT_HELP,
    REBUILD_HELP,
    REGISTRY_HELP,
    TARGET_HELP,
    TRACER_HELP,
    TRACE_PROXY_PORT_HELP,
    VARIANT_HELP,
    mesh_from,
    target_from,
    tracer_from,
)

TARGETS = ("local", "cluster")
CLUSTER_HELP = ("the kind cluster (or --context's) instead of the local mesh; default: invoke setting target "
                "(local), or cluster when cluster.context is set")


def on_cluster(c, cluster: bool, **cluster_flags) -> bool:
    """Whether `inv up`/`inv down` mean the cluster: --cluster, a flag only the cluster takes,
    the invoke setting `target: cluster`, or a configured shared cluster (cluster.context)."""
    target = c.config.get("target") or "local"
    if target not in TARGETS:
        raise Exit(f"The invoke setting target must be {' or '.join(TARGETS)}, got {target!r}.")
    configured = bool((c.config.get("cluster") or {}).get("context"))
    return bool(cluster) or any(bool(v) for v in cluster_flags.values()) or target == "cluster" or configured


@task(klass=MeshTask, metavars={"front_port": "PORT", "trace_proxy_port": "PORT", "otlp_port": "PORT"}, help={
    "name": NAME_HELP,
    "variant": VARIANT_HELP,
    "rebuild": REBUILD_HELP,
    "front_port": FRONT_PORT_HELP,
    "trace_proxy_port": TRACE_PROXY_PORT_HELP,
    "otlp_port": OTLP_PORT_HELP,
    "tracer": TRACER_HELP,
    "registry": REGISTRY_HELP,
    "node_image": NODE_IMAGE_HELP,
    "offline": OFFLINE_HELP,
    "kubernetes": KUBERNETES_HELP,
    "cluster": CLUSTER_HELP,
    **TARGET_HELP,
})
def up(c, name=None, variant="default", rebuild=False, front_port=None, trace_proxy_port=None, tracer=None,
       context=None, namespace=None, registry=None, allow_context=False, node_image=None, offline=False,
       kubernetes=None, cluster=False, otlp_port=None):
    """The local mesh (as local.up), or with --cluster the whole cluster stack.

    On the cluster: cluster.up, build, secret, deploy, forward; then where it all runs. With
    --context and --registry: the same stack in a namespace of a shared cluster (no cluster
    is created; the image is pushed to the registry). With --offline: every image built here
    first (`inv cluster.images`), nothing pulled.
    """
    if not on_cluster(c, cluster, name=name, variant=variant != "default", rebuild=rebuild, context=context,
                      namespace=namespace, registry=registry, allow_context=allow_context, node_image=node_image,
                      offline=offline, kubernetes=kubernetes):
        print("The local mesh (`inv up --cluster` brings up the kind cluster instead):", flush=True)
        options.start_or_reuse(c, front_port=front_port, trace_proxy_port=trace_proxy_port, otlp_port=otlp_port,
                               tracer=tracer)
        return
    # A bad flag fails before anything is created.
    variant = stack.variant_for(variant, tracer_from(c, tracer, "cluster"))
    front_port = options.port(front_port, "--front-port")
    trace_proxy_port = options.port(trace_proxy_port, "--trace-proxy-port")
    otlp_port = options.port(otlp_port, "--otlp-port")
    target = target_from(c, name, context, namespace, registry, allow_context)
    build_options = options.build_options(c, rebuild=rebuild)
    node_image = options.node_image(c, node_image)
    if offline:
        if not target.is_kind:
            raise Exit("--offline builds a kind node image; a shared cluster (--context) pulls from --registry.")
        built = offline_build.images(kubernetes or "")
        node_image = built.node_image
        build_options = replace(build_options, base_image=built.base_image, network="host")
    stack.up(target, variant, build_options, front_port, trace_proxy_port, node_image, otlp_port)


@task(help={"name": NAME_HELP, "cluster": CLUSTER_HELP, **TARGET_HELP})
def down(c, name=None, context=None, namespace=None, allow_context=False, cluster=False):
    """Undo `inv up`: stop the local mesh, or with --cluster delete the kind cluster.

    On the cluster: stop the port-forwards and delete the kind cluster (the image stays in
    Docker). Exits 0 when there is no cluster, also when kind or docker is not installed;
    exits 1 when Docker's daemon is stopped (start it and run this again), as `inv
    cluster.down`. With --context: deletes only the stack's labelled objects in its
    namespace, never a cluster.
    """
    if not on_cluster(c, cluster, name=name, context=context, namespace=namespace, allow_context=allow_context):
        if mesh_from(c).down():
            print("The local mesh is stopped.")
        else:
            print("The local mesh was not running; `inv down --cluster` deletes the kind cluster.")
        return
    stack.down(target_from(c, name, context, namespace, None, allow_context))
