"""The whole cluster stack in one step each: `inv up` and `inv down`.

`inv up` runs the steps behind the cluster tasks in order (cluster.up, build, secret, deploy,
forward), so it does what those five commands do, but checks the tools, Docker's daemon and
the cluster once instead of in every step (meshtools.cluster.stack.up); `inv down` is
cluster.down, which stops the port-forwards and then deletes the cluster.
"""
from __future__ import annotations

from dataclasses import replace

from invoke import task
from invoke.exceptions import Exit

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
    REBUILD_HELP,
    REGISTRY_HELP,
    TARGET_HELP,
    TRACE_PROXY_PORT_HELP,
    TRACER_HELP,
    VARIANT_HELP,
    target_from,
    tracer_from,
)


@task(klass=MeshTask, metavars={"front_port": "PORT", "trace_proxy_port": "PORT"}, help={
    "name": NAME_HELP,
    "variant": VARIANT_HELP,
    "rebuild": REBUILD_HELP,
    "front_port": FRONT_PORT_HELP,
    "trace_proxy_port": TRACE_PROXY_PORT_HELP,
    "tracer": TRACER_HELP,
    "registry": REGISTRY_HELP,
    "node_image": NODE_IMAGE_HELP,
    "offline": OFFLINE_HELP,
    "kubernetes": KUBERNETES_HELP,
    **TARGET_HELP,
})
def up(c, name=None, variant="default", rebuild=False, front_port=None, trace_proxy_port=None, tracer=None,
       context=None, namespace=None, registry=None, allow_context=False, node_image=None, offline=False,
       kubernetes=None):
    """The whole cluster stack: cluster.up, build, secret, deploy, forward; then where it all runs.

    With --context and --registry: the same stack in a namespace of a shared cluster (no
    cluster is created; the image is pushed to the registry).
    """
    # A bad flag fails before anything is created.
    variant = stack.variant_for(variant, tracer_from(c, tracer, "cluster"))
    front_port = options.port(front_port, "--front-port")
    trace_proxy_port = options.port(trace_proxy_port, "--trace-proxy-port")
    target = target_from(c, name, context, namespace, registry, allow_context)
    build_options = options.build_options(c, rebuild=rebuild)
    node_image = options.node_image(c, node_image)
    if offline:
        if not target.is_kind:
            raise Exit("--offline builds a kind node image; a shared cluster (--context) pulls from --registry.")
        built = offline_build.images(kubernetes or "")
        node_image = built.node_image
        build_options = replace(build_options, base_image=built.base_image, network="host")
    stack.up(target, variant, build_options, front_port, trace_proxy_port, node_image)


@task(help={"name": NAME_HELP, **TARGET_HELP})
def down(c, name=None, context=None, namespace=None, allow_context=False):
    """Undo `inv up`: stop the port-forwards and delete the kind cluster (the image stays in Docker).

    Exits 0 when there is no cluster, also when kind or docker is not installed; exits 1 when
    Docker's daemon is stopped (start it and run this again), as `inv cluster.down`. With
    --context: deletes only the stack's labelled objects in its namespace, never a cluster.
    """
    stack.down(target_from(c, name, context, namespace, None, allow_context))
