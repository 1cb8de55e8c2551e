"""The whole cluster stack in one step each: `inv up` and `inv down`.

`inv up` runs the cluster tasks in order (cluster.up, build, secret, deploy, forward) by
calling them, so it does exactly what those five commands do; `inv down` is cluster.down,
which stops the port-forwards and then deletes the cluster.
"""
from __future__ import annotations

from invoke import task
from invoke.exceptions import Exit
from rich.console import Console

from meshtools import forward as port_forward
from meshtools import secret as secrets
from meshtools.cluster_state import state_dir
from meshtools.kubectl import Kubectl
from meshtools.tasks import cluster, options
from meshtools.topology import FRONT, FRONT_URL, TRACE_PROXY, TRACE_PROXY_URL

console = Console(highlight=False, soft_wrap=True)


def summary(cluster_name: str, forwards: list[port_forward.Forward], has_key: bool) -> list[str]:
    """What `inv up` leaves running and where, as lines for the terminal."""
    ports = {f.service: f.local_port for f in forwards}
    front_url = f"http://{port_forward.HOST}:{ports[FRONT]}" if FRONT in ports else FRONT_URL
    proxy_url = f"http://{port_forward.HOST}:{ports[TRACE_PROXY]}" if TRACE_PROXY in ports else TRACE_PROXY_URL
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
    if variant not in cluster.VARIANTS:
        raise Exit(f"Unknown variant {variant!r}: choose one of {', '.join(cluster.VARIANTS)}.")
    front_port = options.port(front_port, "--front-port")
    trace_proxy_port = options.port(trace_proxy_port, "--trace-proxy-port")
    cluster.up(c, name=name)
    cluster.build(c, name=name, rebuild=rebuild)
    if secrets.key_from_env():
        cluster.secret(c, name=name)
    # Without a key in the environment, deploy asks for one (once, at a terminal) only when no
    # Secret exists yet; running `secret` here too would ask twice.
    cluster.deploy(c, name=name, variant=variant, forward=False)
    cluster.forward(c, name=name, front_port=front_port, trace_proxy_port=trace_proxy_port)
    name = cluster.cluster_name(c, name)
    has_key = secrets.secret_exists(Kubectl(name))
    console.print()
    for line in summary(name, port_forward.recorded(state_dir()), has_key):
        console.print(line)


@task(help={"name": cluster.NAME_HELP})
def down(c, name=None):
    """Undo `inv up`: stop the port-forwards and delete the kind cluster (the image stays in Docker).

    Exits 0 when there is no cluster, also when kind or docker is not installed; exits 1 when
    Docker's daemon is stopped (start it and run this again), as `inv cluster.down`.
    """
    cluster.down(c, name=name)
