"""status: one view of everything, one line per local process or cluster pod (`--watch`: live)."""
from __future__ import annotations

import sys
import time
from typing import Callable

from invoke import Exit, task
from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from meshtools.cluster import kind, stack
from meshtools.cluster import status as cluster_status
from meshtools.local import status as local_status
from meshtools.shared.status_table import Row, table
from meshtools.tasks.cli import MeshTask
from meshtools.tasks.options import TARGET_HELP, mesh_from, target_from

PIPED_WIDTH = 80  # a view fits 80 columns when there is no terminal to measure
REFRESH = 1.0  # seconds between two looks with --watch
NOT_RUNNING = 3  # as `inv local.status` and `inv cluster.status`


def console() -> Console:
    return Console() if sys.stdout.isatty() else Console(width=PIPED_WIDTH)


def view(title: str, rows: list[Row], width: int) -> Group:
    healthy = sum(row.ok for row in rows)
    summary = Text(f"{title}: {healthy} of {len(rows)} up", style="bold" if healthy == len(rows) else "bold red")
    return Group(summary, table(rows, width))


@task(klass=MeshTask, help={
    "cluster": "the kind cluster's pods (kubectl, naming its context) instead of the local mesh's processes",
    "watch": f"refresh every {REFRESH:.0f} s until Ctrl-C",
    **TARGET_HELP,
})
def status(c, cluster=False, watch=False, context=None, namespace=None, allow_context=False):
    """Every process (local) or pod (--cluster): health, restarts, ports, uptime, its last error line.

    Exits 3 when nothing runs, 1 when something is not up (without --watch).
    """
    out = console()
    if cluster:
        kind.require_tools("kubectl")
        target = target_from(c, None, context, namespace, None, allow_context)
        kubectl = stack.open_target(target)
        title = f"cluster ({kubectl.context})"

        def look() -> list[Row]:
            try:
                return cluster_status.rows(kubectl)
            except cluster_status.StatusError as exc:
                raise Exit(str(exc)) from None
        nothing = f"No pods of the stack on {kubectl.context}; `inv deploy` puts them there."
    else:
        mesh = mesh_from(c)
        title = "local mesh"

        def look() -> list[Row]:
            return local_status.rows(mesh) if mesh.is_running() else []
        nothing = "The local mesh is not running; `inv local.up` starts it."
    if watch:
        watch_rows(out, title, look, nothing)
        return
    rows = look()
    if not rows:
        out.print(nothing)
        raise Exit(code=NOT_RUNNING)
    out.print(view(title, rows, out.width))
    if not all(row.ok for row in rows):
        raise Exit(code=1)


def watch_rows(out: Console, title: str, look: Callable[[], list[Row]], nothing: str) -> None:
    """Redraw the view in place (rich's Live) every REFRESH seconds until Ctrl-C."""
    def render():
        rows = look()
        stamp = Text(f"{time.strftime('%H:%M:%S')} · refreshing every {REFRESH:.0f} s, Ctrl-C stops", style="dim")
        return Group(view(title, rows, out.width) if rows else Text(nothing), stamp)

    try:
        with Live(render(), console=out, auto_refresh=False, transient=False) as live:
            while True:
                time.sleep(REFRESH)
                live.update(render(), refresh=True)
    except KeyboardInterrupt:
        pass
