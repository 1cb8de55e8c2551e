"""The whole cluster stack in one step each: `inv up` and `inv down`.

`inv up` runs the steps behind the cluster tasks in order (cluster.up, build, secret, deploy,
forward), so it does what those five commands do, but checks the tools, Docker's daemon and
the cluster once instead of in every step (meshtools.cluster.stack.up); `inv down` is
cluster.down, which stops the port-forwards and then deletes the cluster.
"""
from __future__ import annotations

from invoke import task

from meshtools.cluster import stack
from meshtools.tasks import options
from meshtools.tasks.cli import MeshTask
from meshtools.tasks.options import (
    FRONT_PORT_HELP,
    NAME_HELP,
    REBUILD_HELP,
    TRACE_PROXY_PORT_HELP,
    TRACER_HELP,
    VARIANT_HELP,
    cluster_name,
    tracer_from,
)


@task(klass=MeshTask, metavars={"front_port": "PORT", "trace_proxy_port": "PORT"}, help={
    "name": NAME_HELP,
    "variant": VARIANT_HELP,
    "rebuild": REBUILD_HELP,
    "front_port": FRONT_PORT_HELP,
    "trace_proxy_port": TRACE_PROXY_PORT_HELP,
    "tracer": TRACER_HELP,
})
def up(c, name=None, variant="default", rebuild=False, front_port=None, trace_proxy_port=None, tracer=None):
    """The whole cluster stack: cluster.up, build, secret, deploy, forward; then where it all runs."""
    # A bad flag fails before anything is created.
    variant = stack.variant_for(variant, tracer_from(c, tracer, "cluster"))
    front_port = options.port(front_port, "--front-port")
    trace_proxy_port = options.port(trace_proxy_port, "--trace-proxy-port")
    stack.up(cluster_name(c, name), variant, options.build_options(c, rebuild=rebuild), front_port, trace_proxy_port)


@task(help={"name": NAME_HELP})
def down(c, name=None):
    """Undo `inv up`: stop the port-forwards and delete the kind cluster (the image stays in Docker).

    Exits 0 when there is no cluster, also when kind or docker is not installed; exits 1 when
    Docker's daemon is stopped (start it and run this again), as `inv cluster.down`.
    """
    stack.down(cluster_name(c, name))
