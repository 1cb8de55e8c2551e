"""`inv status --cluster`: each of the stack's pods as one row of meshtools.shared.status_table.

One `kubectl get pods -o json` for the states, then each pod's recent log lines (all its
containers, read side by side) for its last error line. Every call names its context.
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

from meshtools.cluster.kubectl import Kubectl
from meshtools.cluster.logs import selector
from meshtools.shared import logformat
from meshtools.shared.status_table import Row

LOG_LINES = 200  # of each container, searched for the last error line


class StatusError(RuntimeError):
    """kubectl could not say; one sentence."""


def health(pod: dict) -> tuple[str, bool]:
    """("up", True) for a Running pod whose containers are all ready; else what kubectl would say."""
    status = pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return "terminating", False
    for container in containers:
        waiting = (container.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            return waiting["reason"], False  # CrashLoopBackOff, ImagePullBackOff, ContainerCreating
    phase = status.get("phase") or "Unknown"
    if phase == "Running" and containers and all(c.get("ready") for c in containers):
        return "up", True
    return ("not ready" if phase == "Running" else phase.lower()), False


def _uptime(pod: dict, now: datetime) -> float | None:
    started = (pod.get("status") or {}).get("startTime")
    if not started:
        return None
    return max(0.0, (now - datetime.fromisoformat(started.replace("Z", "+00:00"))).total_seconds())


def last_error(kubectl: Kubectl, pod: str) -> str:
    result = kubectl.run("logs", pod, "--all-containers", f"--tail={LOG_LINES}", capture=True, check=False,
                         timeout=30)
    for text in reversed(result.stdout.splitlines() if result.returncode == 0 else []):
        if text.strip() and logformat.is_error(text):
            return logformat.brief(text)
    return ""


def rows(kubectl: Kubectl, now: datetime | None = None) -> list[Row]:
    """One row per pod of the stack (front-envoy, service1 ×3, service2, trace-proxy), by name."""
    now = now or datetime.now(timezone.utc)
    result = kubectl.run("get", "pods", "--selector", selector([]), "-o", "json", capture=True, check=False,
                         timeout=30)
    if result.returncode != 0:
        said = (result.stderr or result.stdout).strip().splitlines()
        raise StatusError(f"kubectl get pods failed on {kubectl.context}: {said[-1] if said else result.returncode}")
    pods = sorted(json.loads(result.stdout).get("items", []), key=lambda p: p["metadata"]["name"])
    names = [p["metadata"]["name"] for p in pods]
    with ThreadPoolExecutor(max_workers=8) as pool:
        errors = list(pool.map(lambda name: last_error(kubectl, name), names))
    made = []
    for pod, error in zip(pods, errors):
        state, ok = health(pod)
        ports = [str(port["containerPort"]) for c in pod["spec"].get("containers", []) for port in c.get("ports", [])]
        restarts = sum(c.get("restartCount", 0) for c in (pod.get("status") or {}).get("containerStatuses") or [])
        made.append(Row(name=pod["metadata"]["name"], health=state, ok=ok, restarts=restarts, ports=",".join(ports),
                        uptime=_uptime(pod, now), last_error=error))
    return made
