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
    """Start `mesh` and wait until a request passes end to end.

    Envoy's configs are validated (`envoy --mode validate`, which names the line under
    manifests/) only when the start fails: before every start it took 0.7-1.2 s (load 13 on 2
    cores) before anything ran, and an Envoy that refuses its config exits as it starts,
    which ends the start at once.
    """
    try:
        mesh.check_can_start()
    except MeshError as exc:
        raise Exit(str(exc), code=1)
    console.print(
        f"Starting the local mesh: trace proxy, service2, {mesh.layout.replicas} × service1, their Envoy sidecars "
        f"and front-envoy (logs in {mesh.logs_dir}) …"
    )
    try:
        with sigterm_as_interrupt(), console.status("waiting until a request passes end to end"):
            mesh.up(timeout=timeout)
    except KeyboardInterrupt:
        raise Exit("Interrupted; everything that had started was stopped.", code=130)
    except EnvoyMissing as exc:
        raise Exit(str(exc), code=1)
    except Exception as exc:  # MeshError, or a config that could not even be rendered (YAML, a renamed listener)
        with sigterm_as_interrupt():
            refused = envoy_config.refusal(mesh.layout, mesh.tracer)
        if refused:
            raise Exit(f"Envoy refused its config: {refused}", code=1)
        if isinstance(exc, MeshError):
            raise Exit(str(exc), code=1)
        raise
    return mesh
