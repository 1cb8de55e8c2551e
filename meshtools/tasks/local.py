"""local.*: the mesh on loopback with real Envoy binaries, no Docker needed (the default)."""
from __future__ import annotations

from pathlib import Path

from invoke import Collection, Exit, task
from rich.console import Console
from rich.table import Table

from meshtools.envoy_config import EnvoyMissing
from meshtools.local_mesh import LocalMesh, MeshError
from meshtools.signals import sigterm_as_interrupt
from meshtools.tasks import options
from meshtools.topology import (
    DEFAULT_REPLICAS,
    FRONT_LOCAL_PORT,
    LOCAL_BASE_PORT,
    LOOPBACK,
    TRACE_PROXY_PORT,
    LocalLayout,
)


def layout_from(c, replicas=None, front_port=None, trace_proxy_port=None, base_port=None) -> LocalLayout:
    """Flags first, then invoke config (`local.*`), then LocalLayout's defaults."""
    cfg = c.config.get("local", {})

    def chosen(flag_value, key):
        return flag_value if flag_value is not None else cfg.get(key)

    numbers = {
        "replicas": options.whole_number(chosen(replicas, "replicas"), "--replicas", minimum=1),
        "front_port": options.port(chosen(front_port, "front_port"), "--front-port"),
        "trace_proxy_port": options.port(chosen(trace_proxy_port, "trace_proxy_port"), "--trace-proxy-port"),
        "base_port": options.port(chosen(base_port, "base_port"), "--base-port"),
    }
    numbers = {key: value for key, value in numbers.items() if value is not None}
    try:
        return LocalLayout(**numbers)
    except ValueError as exc:
        raise Exit(f"{exc}.")


def mesh_from(c, layout: LocalLayout | None = None) -> LocalMesh:
    """The mesh in the configured state directory (`local.state_dir`, default .mesh/local)."""
    state_dir = c.config.get("local", {}).get("state_dir")
    return LocalMesh(layout=layout, state_dir=Path(state_dir) if state_dir else None)


def start(c, layout: LocalLayout, console: Console) -> LocalMesh:
    """Bring the local mesh up (shared with `inv demo`); expected failures become Exit."""
    mesh = mesh_from(c, layout)
    try:
        mesh.check_can_start()
    except MeshError as exc:
        raise Exit(str(exc), code=1)
    console.print(
        f"Starting the local mesh: trace proxy, service2, {layout.replicas} × service1, their Envoy sidecars "
        f"and front-envoy (logs in {mesh.logs_dir}) …"
    )
    try:
        with sigterm_as_interrupt(), console.status("waiting until a request passes end to end"):
            mesh.up(timeout=float(c.config.get("local", {}).get("timeout", 90)))
    except (MeshError, EnvoyMissing) as exc:
        raise Exit(str(exc), code=1)
    except KeyboardInterrupt:
        raise Exit("Interrupted; everything that had started was stopped.", code=130)
    return mesh


@task(
    help={
        "replicas": f"service1 replicas (default {DEFAULT_REPLICAS}, as in the seed)",
        "front_port": f"front-envoy's port on {LOOPBACK} (default {FRONT_LOCAL_PORT})",
        "trace_proxy_port": f"the trace proxy's port on {LOOPBACK} (default {TRACE_PROXY_PORT})",
        "base_port": f"first of the ports for everything else, four per instance (default {LOCAL_BASE_PORT})",
    }
)
def up(c, replicas=None, front_port=None, trace_proxy_port=None, base_port=None):
    """Start the mesh locally (real Envoy, Flask, trace proxy) and wait until it serves."""
    console = Console()
    layout = layout_from(c, replicas, front_port, trace_proxy_port, base_port)
    mesh = start(c, layout, console)
    console.print(f"[green]The local mesh is up.[/] Front: {layout.front_url}   Trace proxy: {layout.trace_proxy_url}")
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
    table = Table(title=f"local mesh: front {mesh.layout.front_url}, trace proxy {mesh.layout.trace_proxy_url}",
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
                        "timeout": 90, "state_dir": None}})
