"""The kind cluster target: `inv cluster.up`, `inv build deploy`, then `inv echo`/`load`/`traces`.

`cluster.up|down|status` form the `cluster` collection; `build`, `deploy`, `secret` and
`forward` are top-level tasks (tasks.py adds them). The cluster name resolves as
--name flag → invoke config `cluster.name` → envoy-tracing. The work is in
meshtools.cluster.stack, whose steps `inv up` (tasks/stack.py) runs in a row.
"""
from __future__ import annotations

from invoke import Collection, task

from meshtools.cluster import kind, stack
from meshtools.tasks import options
from meshtools.tasks.cli import MeshTask
from meshtools.tasks.options import (
    BASE_IMAGE_HELP,
    BUILD_NETWORK_HELP,
    FRONT_PORT_HELP,
    NAME_HELP,
    REBUILD_HELP,
    TRACE_PROXY_PORT_HELP,
    TRACER_HELP,
    VARIANT_HELP,
    cluster_name,
    tracer_from,
)


@task(help={"name": NAME_HELP})
def up(c, name=None):
    """Create the kind cluster from kind-config.yaml (unless it exists) and wait for its node."""
    stack.cluster_up(cluster_name(c, name))


@task(help={"name": NAME_HELP})
def down(c, name=None):
    """Stop the port-forwards and delete the kind cluster (fine when it does not exist).

    Exits 0 when there is no cluster, also when kind or docker is not installed (then there can
    be none). Exits 1 when Docker's daemon is stopped: the cluster may still exist and come back
    with Docker, so start Docker and run it again.
    """
    stack.down(cluster_name(c, name))


@task(help={"name": NAME_HELP})
def status(c, name=None):
    """Show the cluster, its node, the pods and what is port-forwarded.

    Exits 3 when the cluster does not exist or is not running (also when kind or docker is not
    installed, or Docker's daemon is stopped), like `inv local.status` when nothing runs.
    """
    stack.status(cluster_name(c, name))


@task(help={
    "name": NAME_HELP,
    "rebuild": REBUILD_HELP,
    "base_image": BASE_IMAGE_HELP,
    "network": BUILD_NETWORK_HELP,
    "load": "load the image into the kind cluster afterwards (default: yes; --no-load only builds, and needs no kind)",
})
def build(c, name=None, rebuild=False, base_image=None, network=None, load=True):
    """Build the service image, tagged by its content and base, and load it into the kind cluster."""
    stack.build(cluster_name(c, name), options.build_options(c, base_image, network, rebuild), load)


@task
def lock(c):
    """Pin the image's dependencies: resolve pyproject.toml's core dependencies into service.requirements.txt."""
    stack.relock()


@task(help={
    "name": NAME_HELP,
    "variant": VARIANT_HELP,
    "forward": "port-forward front-envoy and the trace proxy afterwards (default: yes)",
    "tracer": TRACER_HELP,
})
def deploy(c, name=None, variant="default", forward=True, tracer=None):
    """Apply the manifests with the image from `inv build`, wait for every rollout, show the pods."""
    variant = stack.variant_for(variant, tracer_from(c, tracer, "cluster"))
    stack.deploy(cluster_name(c, name), variant, forward)


@task(help={"name": NAME_HELP})
def secret(c, name=None):
    """Create or update the honeycomb-writekey Secret from HONEYCOMB_API_KEY or a hidden prompt.

    Restarts the trace proxy (which empties its span store) only when the key changed.
    """
    stack.secret(cluster_name(c, name))


@task(klass=MeshTask, metavars={"front_port": "PORT", "trace_proxy_port": "PORT"}, help={
    "name": NAME_HELP,
    "stop": "stop the recorded port-forwards instead of starting them",
    "front_port": FRONT_PORT_HELP,
    "trace_proxy_port": TRACE_PROXY_PORT_HELP,
})
def forward(c, name=None, stop=False, front_port=None, trace_proxy_port=None):
    """Port-forward front-envoy and the trace proxy to their usual local ports, in the background."""
    front_port = options.port(front_port, "--front-port")
    trace_proxy_port = options.port(trace_proxy_port, "--trace-proxy-port")
    stack.forward(cluster_name(c, name), stop, front_port, trace_proxy_port)


ns = Collection("cluster")
ns.add_task(up)
ns.add_task(down)
ns.add_task(status)
ns.configure({"cluster": {"name": kind.DEFAULT_CLUSTER_NAME, "tracer": None}})

# Top-level tasks: tasks.py adds each with ns.add_task(...).
TOP_LEVEL_TASKS = (build, deploy, secret, forward, lock)
