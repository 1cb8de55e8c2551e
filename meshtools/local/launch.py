"""Bring the local mesh up for a task (`inv local.up`, `inv demo`), with the user watching.

Expected failures (ports taken, no envoy, a process that never serves, Ctrl-C) end the task
with one sentence and exit code; everything that had started is stopped by LocalMesh.
"""
from __future__ import annotations

from invoke.exceptions import Exit
from rich.console import Console

from meshtools.local import envoy_config
from meshtools.local.envoy_config import EnvoyMissing
from meshtools.local.mesh import LocalMesh, MeshError
from meshtools.shared.signals import sigterm_as_interrupt


def start(mesh: LocalMesh, console: Console, timeout: float = 90.0) -> LocalMesh:
    """Start `mesh` and wait until a request passes end to end."""
    try:
        mesh.check_can_start()
        # Before anything starts: a config Envoy refuses is named by its line under manifests/.
        with sigterm_as_interrupt():
            refused = envoy_config.refusal(mesh.layout, mesh.tracer)
    except (MeshError, EnvoyMissing) as exc:
        raise Exit(str(exc), code=1)
    except KeyboardInterrupt:
        raise Exit("Interrupted before anything started.", code=130)
    if refused:
        raise Exit(f"Envoy refused its config: {refused}", code=1)
    console.print(
        f"Starting the local mesh: trace proxy, service2, {mesh.layout.replicas} × service1, their Envoy sidecars "
        f"and front-envoy (logs in {mesh.logs_dir}) …"
    )
    try:
        with sigterm_as_interrupt(), console.status("waiting until a request passes end to end"):
            mesh.up(timeout=timeout)
    except (MeshError, EnvoyMissing) as exc:
        raise Exit(str(exc), code=1)
    except KeyboardInterrupt:
        raise Exit("Interrupted; everything that had started was stopped.", code=130)
    return mesh
