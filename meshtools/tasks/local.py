"""local.*: the mesh on loopback with real Envoy binaries, no Docker needed (the default)."""
from __future__ import annotations

from invoke import Collection, Exit, task
from rich.table import Table

from meshtools.local.mesh import MeshError
from meshtools.shared.status_table import uptime
from meshtools.tasks.cli import MeshTask
from meshtools.views.trace_view import terminal_console
from meshtools.tasks.options import (
    OTLP_PORT_HELP,
    TRACER_HELP,
    mesh_from,
    running_mesh,
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
        table.add_row(state.name, str(state.pid or "-"), uptime(state.uptime), str(state.restarts),
                      " ".join(map(str, state.listens)) or "-", str(state.admin_port or "-"), health)
    console.print(table)
    console.print(f"logs: {mesh.logs_dir}/NAME.log (`inv logs NAME`); Envoy's admin: "
                  f"http://{mesh.layout.host}:ADMIN/stats")
    if not all(state.healthy for state in states):
        raise Exit(code=1)


NAMES_HELP = ("processes, as words: inv local.restart service2 front-envoy; a name or its start, as `inv logs` "
              "takes them (service1: each replica's app and Envoy); `inv local.status` lists them")


def _running_and_chosen(c, names: str):
    """The running mesh and the processes NAMES mean; Exit with one sentence otherwise."""
    wanted = [n.strip() for n in (names or "").split(",") if n.strip()]
    if not wanted:
        raise Exit("Name the processes, e.g. `inv local.restart service2`; `inv local.status` lists them.")
    mesh = running_mesh(c)
    if mesh is None:
        raise Exit("The local mesh is not running; `inv local.up` starts it.", code=3)
    try:
        return mesh, mesh.choose(wanted)
    except MeshError as exc:
        raise Exit(str(exc)) from None


def _control(action: str, c, names: str) -> None:
    mesh, chosen = _running_and_chosen(c, names)
    console = terminal_console()
    try:
        with console.status(f"{action} {', '.join(chosen)}"):
            if action == "stopping":
                done = mesh.stop_processes(chosen)
            elif action == "starting":
                done = mesh.start_processes(chosen)
            else:
                mesh.restart_processes(chosen)
                done = chosen
    except MeshError as exc:
        raise Exit(str(exc)) from None
    others = [n for n in chosen if n not in done]
    past = {"stopping": "stopped", "starting": "started and answering", "restarting": "restarted and answering"}
    if done:
        console.print(f"{', '.join(done)}: {past[action]}.", soft_wrap=True)
    if others:
        console.print(f"{', '.join(others)}: already {'stopped' if action == 'stopping' else 'running'}.",
                      soft_wrap=True)


@task(klass=MeshTask, variadic="names", metavars={"names": "NAME,…"}, help={"names": NAMES_HELP})
def restart(c, names=""):
    """Restart local processes (NAME…) and wait until each answers its health check again."""
    _control("restarting", c, names)


@task(klass=MeshTask, variadic="names", metavars={"names": "NAME,…"}, help={"names": NAMES_HELP})
def stop(c, names=""):
    """Stop local processes (NAME…); they stay stopped (not restarted) until `inv local.start`."""
    _control("stopping", c, names)


@task(klass=MeshTask, variadic="names", metavars={"names": "NAME,…"}, help={"names": NAMES_HELP})
def start(c, names=""):
    """Start stopped local processes (NAME…) and wait until each answers its health check."""
    _control("starting", c, names)


ns = Collection("local", up, down, status, restart, stop, start)
ns.configure({"local": {"replicas": None, "front_port": None, "trace_proxy_port": None, "base_port": None,
                        "otlp_port": None, "tracer": None, "timeout": 90, "state_dir": None}})
