"""`inv status` for the local mesh: each supervised process as one row of meshtools.shared.status_table."""
from __future__ import annotations

from meshtools.local.logs import last_error
from meshtools.local.mesh import LocalMesh, ProcessState
from meshtools.shared.status_table import Row


def health(state: ProcessState) -> str:
    if state.healthy:
        return "up"
    if state.state == "RUNNING":
        return "not ready"  # running, but its health check does not answer 200
    return state.state.lower()  # stopped, starting, backoff, fatal, exited


def rows(mesh: LocalMesh) -> list[Row]:
    """One row per process, in supervisord's order; [] when the mesh is not running."""
    return [Row(name=s.name, health=health(s), ok=s.healthy, restarts=s.restarts,
                ports=",".join(map(str, s.listens)), uptime=s.uptime, last_error=last_error(s.log))
            for s in mesh.status()]
