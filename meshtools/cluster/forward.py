"""Background `kubectl port-forward`s that make the cluster answer where the local target
does (front-envoy on its usual loopback port, the trace proxy on Zipkin's and on OTLP/HTTP's), so
`inv echo`, `inv load`, `inv traces` and an OpenTelemetry SDK on the laptop work unchanged.

Each forward runs in its own session (it outlives the task and a Ctrl-C in the terminal),
is checked with a socket connect before it counts, and is recorded in forward.json so
`inv forward --stop` and `inv cluster.down` can end it.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from invoke.exceptions import Exit

from meshtools.cluster.kubectl import Kubectl
from meshtools.shared.net import accepts_connections, port_in_use
from meshtools.shared.pids import cmdline_contains
from meshtools.shared.proc import last_line
from meshtools.shared.topology import (FRONT, FRONT_LOCAL_PORT, INGRESS_PORT, LOOPBACK, TRACE_PROXY,
                                      TRACE_PROXY_OTLP_PORT, TRACE_PROXY_PORT)

RECORD = "forward.json"
OTLP = "otlp"  # the role of the second forward to the trace proxy: its OTLP/HTTP port
OTLP_PORT_NAME = "otlp-http"  # that port's name in the trace proxy's pod


@dataclass(frozen=True)
class Forward:
    service: str  # the Kubernetes Service
    local_port: int
    remote_port: int
    pid: int = 0
    context: str = ""
    namespace: str = ""  # empty: the context's default

    @property
    def role(self) -> str:
        """What it reaches: the Service, or OTLP for the trace proxy's second (OTLP/HTTP) port."""
        return OTLP if (self.service, self.remote_port) == (TRACE_PROXY, TRACE_PROXY_OTLP_PORT) else self.service


def default_forwards(front_port: int | None = None, trace_proxy_port: int | None = None,
                     otlp_port: int | None = None, otlp: bool = True) -> list[Forward]:
    """front-envoy and the trace proxy; its OTLP port too unless `otlp` is False (a proxy without one)."""
    return [
        Forward(FRONT, front_port or FRONT_LOCAL_PORT, INGRESS_PORT),
        Forward(TRACE_PROXY, trace_proxy_port or TRACE_PROXY_PORT, TRACE_PROXY_PORT),
        *([Forward(TRACE_PROXY, otlp_port or TRACE_PROXY_OTLP_PORT, TRACE_PROXY_OTLP_PORT)] if otlp else []),
    ]


def serves_otlp(kubectl: Kubectl) -> bool:
    """Whether the deployed trace proxy's pod has the OTLP port (manifests/base/trace-proxy.yaml's
    otlp-http): the upstream-proxy variant's has not, and a forward to it would fail."""
    result = kubectl.run("get", "deployment", TRACE_PROXY,
                         "-o", "jsonpath={.spec.template.spec.containers[*].ports[*].name}",
                         capture=True, check=False, timeout=60)
    return result.returncode == 0 and OTLP_PORT_NAME in result.stdout.split()


def by_role(forwards) -> dict[str, int]:
    """Local port by what each forward reaches (FRONT, TRACE_PROXY, OTLP, ZIPKIN_UI)."""
    return {forward.role: forward.local_port for forward in forwards}


def alive(pid: int) -> bool:
    try:
        # Reap it first if it is our own child that already exited.
        if os.waitpid(pid, os.WNOHANG)[0]:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False  # no /proc (macOS): os.kill said it exists
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def recorded(directory: Path) -> list[Forward]:
    try:
        return [Forward(**item) for item in json.loads((directory / RECORD).read_text())]
    except (OSError, ValueError, TypeError):
        return []


def _write(directory: Path, forwards: list[Forward]) -> None:
    (directory / RECORD).write_text(json.dumps([asdict(f) for f in forwards], indent=2) + "\n")


PORT_RELEASE_TIMEOUT = 5.0


def start(kubectl: Kubectl, forwards: list[Forward], directory: Path, timeout: float = 20.0) -> list[Forward]:
    """(Re)start the forwards and wait until each local port answers."""
    stop(directory)  # old forwards may point at pods a rollout replaced
    for forward in forwards:  # ours too, when their record is gone
        if port_in_use(LOOPBACK, forward.local_port):
            stop_strays(kubectl.context, forward)
    # A stopped kubectl (Go, many threads) can look gone while its last thread still holds the port.
    deadline = time.monotonic() + PORT_RELEASE_TIMEOUT
    while (busy := [f.local_port for f in forwards if port_in_use(LOOPBACK, f.local_port)]) \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    if busy:
        ports = ", ".join(f"{LOOPBACK}:{p}" for p in busy)
        raise Exit(f"{ports} already in use (is the local target running? `inv local.down` stops it).")
    started: list[Forward] = []
    try:
        for forward in forwards:
            log = directory / f"forward-{forward.role}.log"
            with open(log, "wb") as out:
                process = subprocess.Popen(
                    kubectl.argv("port-forward", "--address", LOOPBACK, f"svc/{forward.service}",
                                 f"{forward.local_port}:{forward.remote_port}"),
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            started.append(Forward(forward.service, forward.local_port, forward.remote_port, process.pid, kubectl.context,
                                   kubectl.namespace or ""))
            _write(directory, started)
            _wait_until_answering(process, forward, log, timeout)
    except BaseException:
        stop(directory)
        raise
    return started


def _wait_until_answering(process: subprocess.Popen, forward: Forward, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            reason = last_line(log.read_text(errors="replace")) or f"exit {process.returncode}"
            raise Exit(f"port-forward to svc/{forward.service} stopped: {reason}")
        if accepts_connections(LOOPBACK, forward.local_port):
            return
        time.sleep(0.1)
    raise Exit(f"port-forward to svc/{forward.service} did not answer on {LOOPBACK}:{forward.local_port} within {timeout:g}s; see {log}.")


def stop(directory: Path, grace: float = 5.0) -> list[Forward]:
    """End every recorded forward that is still running; forget the record."""
    stopped = []
    for forward in recorded(directory):
        if forward.pid and alive(forward.pid) and cmdline_contains(forward.pid, "port-forward"):
            try:
                os.killpg(forward.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                continue
            deadline = time.monotonic() + grace
            while alive(forward.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if alive(forward.pid):
                os.killpg(forward.pid, signal.SIGKILL)
            stopped.append(forward)
    (directory / RECORD).unlink(missing_ok=True)
    return stopped


def stop_strays(context: str, forward: Forward, grace: float = 5.0) -> None:
    """End a `kubectl port-forward` of ours onto the same local port that no record names (a
    state folder removed, a forward left by an interrupted task): same context, same port."""
    wanted = [b"port-forward", f"--context\0{context}\0".encode(), f"\0{forward.local_port}:".encode()]
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if all(part in cmdline for part in wanted):
            pid = int(entry.name)
            try:
                os.kill(pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                continue
            deadline = time.monotonic() + grace
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)


def status(directory: Path) -> list[tuple[Forward, bool]]:
    """Each recorded forward and whether it is running and answering."""
    return [(f, alive(f.pid) and accepts_connections(LOOPBACK, f.local_port)) for f in recorded(directory)]
