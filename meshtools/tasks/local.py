"""local.*: the mesh on loopback with real Envoy binaries, no Docker needed (the default)."""
from __future__ import annotations

from invoke import Collection, Exit, task
from rich.table import Table

from meshtools.tasks.cli import MeshTask
from meshtools.views.trace_view import terminal_console
from meshtools.tasks.options import (
    OTLP_PORT_HELP,
    TRACER_HELP,
    mesh_from,
    start_or_reuse,
)
from meshtools.shared.topology import (
    DEFAULT_REPLICAS,
    FRONT_LOCAL_PORT,
    LOCAL_BASE_PORT,
    LOOPBACK,
    TRACE_PROXY_PORT,
)


@task(
    klass=MeshTask,
    metavars={"replicas": "N", "front_port": "PORT", "trace_proxy_port": "PORT", "base_port": "PORT",
              "otlp_port": "PORT", "tracer": "TRACER"},
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
    """Start the mesh locally (real Envoy, Flask, trace proxy) and wait until it serves.

    On a running mesh it only says so (exit 0), unless asked for another layout or tracer (exit 1).
    """
    return start_or_reuse(c, replicas, front_port, trace_proxy_port, base_port, otlp_port, tracer)


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
    """Show each local process: pid, uptime, restarts, ports, health; exits 3 when nothing runs.

    Exits 1 when a process is not healthy. Envoy's admin port serves /stats, /clusters, /ready.
    """
    console = terminal_console()
    mesh = mesh_from(c)
    states = mesh.status() if mesh.is_running() else []
    if not states:
        console.print("The local mesh is not running; `inv local.up` starts it.")
        raise Exit(code=3)
    console.print(f"local mesh ({mesh.tracer} tracer): front {mesh.layout.front_url}, "
                  f"trace proxy {mesh.layout.trace_proxy_url}")
    table = Table(box=None, padding=(0, 2, 0, 0), pad_edge=False, header_style="bold")
    for column in ("process", "pid", "uptime", "restarts", "listens", "admin", "health"):
        table.add_column(column, no_wrap=True)
    for state in states:
        health = "[green]healthy[/]" if state.healthy else f"[red]NOT HEALTHY[/] ({state.state})"
        table.add_row(state.name, str(state.pid or "-"), duration(state.uptime), str(state.restarts),
                      " ".join(map(str, state.listens)) or "-", str(state.admin_port or "-"), health)
    console.print(table)
    console.print(f"logs: {mesh.logs_dir}/NAME.log (`inv logs NAME`); Envoy's admin: "
                  f"http://{mesh.layout.host}:ADMIN/stats")
    if not all(state.healthy for state in states):
        raise Exit(code=1)


def duration(seconds: float | None) -> str:
    """An uptime the way `ps` and `kubectl get pods` put it: 42s, 3m05s, 2h07m, 3d04h."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


ns = Collection("local", up, down, status)
ns.configure({"local": {"replicas": None, "front_port": None, "trace_proxy_port": None, "base_port": None,
                        "otlp_port": None, "tracer": None, "timeout": 90, "state_dir": None}})
