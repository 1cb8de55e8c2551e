"""`inv dev --cluster`: on each change, the image is built and loaded and the stack redeployed.

A change rolls the pods it affects (the image tag is a hash of the sources; each Envoy
ConfigMap's name a hash of its file), `kubectl rollout status` waits for the new pods to be
ready, and the port-forwards that ran before are started again on their ports (a forward
ends with its pod). Each change prints one line: what changed, each step's time, and how long
after the save the new pods served. A build or rollout that fails leaves the running pods
serving and is reported with its error.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterable

from invoke.exceptions import Exit, UnexpectedExit

from meshtools.cluster import forward as port_forward
from meshtools.cluster import kind, remote, stack
from meshtools.cluster.target import Target
from meshtools.cluster.state import state_dir
from meshtools.shared.net import accepts_connections
from meshtools.shared.topology import FRONT, LOOPBACK, TRACE_PROXY, ZIPKIN_UI
from meshtools.shared.readiness import wait_until
from meshtools.shared.watch import relative, watch_changes, watched

SERVING_TIMEOUT = 60.0


def check(target: Target) -> None:
    """End the task now, not at the first save, when a change could not be deployed: every missing
    tool named at once, then the cluster (or the shared cluster's guard and registry), then Docker's daemon."""
    kind.require_tools("docker", *(["kind"] if target.is_kind else []), "kubectl")
    if not target.is_kind:
        remote.require_registry(target)
    stack.open_target(target)
    kind.require_docker_daemon()


def apply(target: Target, paths: Iterable[Path], saved_at: float | None = None, dev: bool = False) -> str | None:
    """Build, load and deploy for `paths`; the one line to print (None when nothing watched changed).

    `dev`: deploy the dev-mode stack (manifests/dev), as meshtools.cluster.live does for what it cannot sync."""
    changed = sorted(p for p in set(paths) if watched(p) or dev)
    if not changed:
        return None
    saved_at = saved_at if saved_at is not None else time.time()
    files = ", ".join(relative(p) for p in changed)
    ports = port_forward.by_role(f for f, _ in port_forward.status(state_dir()))
    try:
        started = time.monotonic()
        ref = stack.build(target)
        built = time.monotonic()
        stack.deploy(target, forward=False, dev=dev)
        deployed = time.monotonic()
        if ports:
            stack.forward(target, front_port=ports.get(FRONT), trace_proxy_port=ports.get(TRACE_PROXY),
                          zipkin_ui_port=ports.get(ZIPKIN_UI), otlp_port=ports.get(port_forward.OTLP))
            front = ports.get(FRONT)
            if front and not wait_until(lambda: accepts_connections(LOOPBACK, front), SERVING_TIMEOUT):
                raise Exit(f"the forward to front-envoy on {LOOPBACK}:{front} did not answer")
    except (Exit, UnexpectedExit) as exc:
        reason = getattr(exc, "message", None) or str(exc).strip().splitlines()[-1]
        return f"{files} changed: NOT deployed, the running pods keep serving: {reason}"
    return (f"{files} changed → built {ref.rsplit(':', 1)[-1]} in {built - started:.1f} s, deployed and rolled out "
            f"in {deployed - built:.1f} s; new pods serving {time.time() - saved_at:.1f} s after the save")


def watch(target: Target, emit: Callable[[str], None], stop_event=None) -> None:
    for paths, saved_at in watch_changes(stop_event):
        line = apply(target, paths, saved_at)
        if line:
            emit(f"{time.strftime('%H:%M:%S')} {line}")

