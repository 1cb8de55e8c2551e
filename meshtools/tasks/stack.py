"""The whole cluster stack in one step each: `inv up` and `inv down`.

`inv up` runs the steps behind the cluster tasks in order (cluster.up, build, secret, deploy,
forward), so it does what those five commands do, but checks the tools, Docker's daemon and
the cluster once instead of in every step; `inv down` is cluster.down, which stops the
port-forwards and then deletes the cluster.
"""
from __future__ import annotations

from invoke import task
from rich.console import Console

from meshtools import forward as port_forward
from meshtools import kind
from meshtools import secret as secrets
from meshtools.kubectl import Kubectl
from meshtools.tasks import cluster, options
from meshtools.topology import FRONT, FRONT_URL, LOOPBACK, TRACE_PROXY, TRACE_PROXY_URL

console = Console(highlight=False, soft_wrap=True)


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


@task(help={
    "name": cluster.NAME_HELP,
    "variant": "manifests to apply: default (our trace proxy) or upstream-proxy (the seed's)",
    "rebuild": "build the image even if one with this content tag exists",
    "front_port": cluster.FRONT_PORT_HELP,
    "trace_proxy_port": cluster.TRACE_PROXY_PORT_HELP,
})
def up(c, name=None, variant="default", rebuild=False, front_port=None, trace_proxy_port=None):
    """The whole cluster stack: cluster.up, build, secret, deploy, forward; then where it all runs."""
    # Checked before anything is created, not when `deploy` or `forward` finally runs.
    cluster.check_variant(variant)
    front_port = options.port(front_port, "--front-port")
    trace_proxy_port = options.port(trace_proxy_port, "--trace-proxy-port")
    name = cluster.cluster_name(c, name)
    kind.preflight()
    kubectl = cluster.create_cluster(name)  # from here on the cluster exists
    ref = cluster.build_image(name, rebuild)
    # A key in the environment replaces the stored one (as `inv secret`); without one, an
    # existing Secret is kept and the prompt comes only when there is none.
    has_key = cluster.put_secret(kubectl, keep_existing=not secrets.key_from_env())
    cluster.roll_out(kubectl, variant, ref)
    forwards = cluster.start_forwards(kubectl, front_port, trace_proxy_port)
    console.print()
    for line in summary(name, forwards, has_key):
        console.print(line)


@task(help={"name": cluster.NAME_HELP})
def down(c, name=None):
    """Undo `inv up`: stop the port-forwards and delete the kind cluster (the image stays in Docker).

    Exits 0 when there is no cluster, also when kind or docker is not installed; exits 1 when
    Docker's daemon is stopped (start it and run this again), as `inv cluster.down`.
    """
    cluster.down(c, name=name)
