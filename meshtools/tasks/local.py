"""local.*: the mesh on loopback with real Envoy binaries, no Docker needed (the default)."""
from __future__ import annotations

from invoke import Collection, Exit, task
from rich.console import Console
from rich.table import Table

from meshtools.local import launch
from meshtools.tasks.options import OTLP_PORT_HELP, TRACER_HELP, layout_from, local_timeout, mesh_from, tracer_from
from meshtools.shared.topology import (
    DEFAULT_REPLICAS,
    FRONT_LOCAL_PORT,
    LOCAL_BASE_PORT,
    LOOPBACK,
    TRACE_PROXY_PORT,
)


@task(
    help={
        "replicas": f"service1 replicas (default {DEFAULT_REPLICAS}, as in the seed)",
        "front_port": f"front-envoy's port on {LOOPBACK} (default {FRONT_LOCAL_PORT})",
        "trace_proxy_port": f"the trace proxy's port on {LOOPBACK} (default {TRACE_PROXY_PORT})",
        "base_port": f"first of the ports for everything else, four per instance (default {LOCAL_BASE_PORT})",
        "otlp_port": OTLP_PORT_HELP,
        "tracer": TRACER_HELP,
    }
)
def up(c, replicas=None, front_port=None, trace_proxy_port=None, base_port=None, otlp_port=None, tracer=None):
    """Start the mesh locally (real Envoy, Flask, trace proxy) and wait until it serves."""
    console = Console()
    layout = layout_from(c, replicas, front_port, trace_proxy_port, base_port, otlp_port)
    mesh = launch.start(mesh_from(c, layout, tracer_from(c, tracer, "local")), console, local_timeout(c))
    console.print(f"[green]The local mesh is up[/] ({mesh.tracer} tracer). Front: {layout.front_url}   "
                  f"Trace proxy: {layout.trace_proxy_url}")
    console.print(f"Traces in your browser: {layout.trace_proxy_url}/")
    console.print("Try `inv echo --name friend`, then `inv traces`; `inv local.status` shows the processes, "
                  "`inv local.down` stops them.")
    return mesh


@task
def down(c):
    """Stop every local process; safe to run when nothing is up."""
    mesh = mesh_from(c)
    if mesh.down():
        print("The local mesh is stopped.")
    else:
        print("The local mesh was not running.")


@task
def status(c):
    """Show each local process, its health and its log file; exits 3 when nothing runs."""
    console = Console()
    mesh = mesh_from(c)
    states = mesh.status() if mesh.is_running() else []
    if not states:
        console.print("The local mesh is not running; `inv local.up` starts it.")
        raise Exit(code=3)
    table = Table(title=f"local mesh ({mesh.tracer} tracer): front {mesh.layout.front_url}, "
                        f"trace proxy {mesh.layout.trace_proxy_url}",
                  caption=f"logs in {mesh.logs_dir}/")
    for column in ("process", "state", "pid", "health", "log"):
        table.add_column(column)
    for state in states:
        health = "[green]healthy[/]" if state.healthy else "[red]NOT HEALTHY[/]"
        table.add_row(state.name, state.state, str(state.pid or "-"), health, state.log.name)
    console.print(table)
    if not all(state.healthy for state in states):
        raise Exit(code=1)


ns = Collection("local", up, down, status)
ns.configure({"local": {"replicas": None, "front_port": None, "trace_proxy_port": None, "base_port": None,
                        "otlp_port": None, "tracer": None, "timeout": 90, "state_dir": None}})
