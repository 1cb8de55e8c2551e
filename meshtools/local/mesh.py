"""The local target: the whole mesh as supervised processes on loopback.

supervisord (from PyPI) runs every process in the background, restarts one that dies, as
Kubernetes would, and stops them all as process groups. This module writes its config,
starts it, waits until a request passes end to end, and reads its state back.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import xmlrpc.client
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable
from urllib.parse import urlsplit

import requests
from supervisor.xmlrpc import Faults, SupervisorTransport

from meshtools.local import envoy_config
from meshtools.local.names import UnknownName, expand
from meshtools.shared.net import accepts_connections, port_in_use
from meshtools.shared.readiness import NotReady, wait_until_ok
from meshtools.shared import tracers
from meshtools.shared.pids import cmdline_contains
from meshtools.shared.topology import PROJECT_ROOT, SERVICE1, SERVICE2, TRACE_PROXY, Instance, LocalLayout

DEFAULT_STATE_DIR = PROJECT_ROOT / ".mesh" / "local"
ENVOY_LOG_FLUSH_MS = 500  # how often each Envoy writes out its access log (the manifests say the same)
SPAWNED = re.compile(r"spawned: '(?P<name>[^']+)' with pid")  # supervisord's log line per start
TRACE_PROXY_PROGRAM = TRACE_PROXY  # its supervisord program name
SERVICE_NUMBER = {SERVICE1: "1", SERVICE2: "2"}
# The trace proxy lists a trace once no span came for it for this long. Here every span crosses
# loopback only and each Envoy sends what it holds every 0.2 s: two of those and a margin. The
# proxy's default (1 s) made a fresh mesh's first trace wait half a second longer.
LOCAL_SETTLE_SECONDS = 0.5
# A trace whose every call was answered (each client span has its server span below it) needs
# only one flush interval of quiet (trace_proxy/store/wholeness.py: how that was measured); a
# fresh mesh's first trace is listed 0.3 s sooner.
LOCAL_ANSWERED_SETTLE_SECONDS = 0.2
# supervisord, each program in a session of its own (supervisord_sessions.py: why); its
# command line names "supervisord", which is how a recorded pid is known to be ours.
SUPERVISORD_MODULE = "meshtools.local.supervisord_sessions"
READY_POLL = 0.02  # seconds between readiness probes while the mesh starts
STATE_CHECK_INTERVAL = 0.25  # seconds between asking supervisord whether a process exited at start
# supervisord's states of a process that died: BACKOFF (within startsecs, to be retried),
# FATAL (retries used up), EXITED (after it had been running).
EXITED_STATES = ("BACKOFF", "FATAL", "EXITED")
# The Flask service under gunicorn; BIND in its environment says where it listens. The config
# is given as a file, not as python:service.gunicorn_conf, so gunicorn's master process never
# imports the `service` package: a worker it starts on SIGHUP (`inv dev`) loads the code anew.
APP_COMMAND = [sys.executable, "-m", "gunicorn", "-c", str(PROJECT_ROOT / "service" / "gunicorn_conf.py"),
               "service:create_app()"]


def trace_proxy_command(host: str, port: int, *options: str, otlp_port: int = 0) -> list[str]:
    """`otlp_port`: the proxy's second port for OTLP clients (0: none, OTLP still arrives on `port`)."""
    return [sys.executable, "-m", "trace_proxy", "--host", host, "--port", str(port),
            "--otlp-port", str(otlp_port), *options]


class MeshError(RuntimeError):
    """An expected failure, worded as one sentence that says what to do."""


@dataclass(frozen=True)
class Program:
    name: str
    command: list[str]
    health_url: str
    env: dict[str, str]
    listens: tuple[int, ...] = ()  # the ports it serves on
    admin_port: int | None = None  # an Envoy's admin interface (/stats, /clusters, /ready)


def _app_program(instance: Instance, layout: LocalLayout, service_env: dict[str, str]) -> Program:
    env = {
        "SERVICE_NAME": SERVICE_NUMBER[instance.service],
        "HOSTNAME": instance.name,
        "BIND": f"{layout.host}:{instance.app_port}",
        **service_env,
    }
    if instance.egress_port:
        env["EGRESS_URL"] = f"http://{layout.host}:{instance.egress_port}"
    return Program(
        name=f"{instance.name}-app",
        command=APP_COMMAND,
        health_url=f"http://{layout.host}:{instance.app_port}/healthz",
        env=env,
        listens=(instance.app_port,),
    )


def _envoy_program(instance: Instance, layout: LocalLayout, config: Path, envoy: str) -> Program:
    # The span's service name under either tracer: --service-cluster (Zipkin) and
    # OTEL_RESOURCE_ATTRIBUTES (OpenTelemetry), like the pod name in the cluster.
    return Program(
        name=f"{instance.name}-envoy" if instance.app_port else instance.name,
        command=[
            envoy,
            "-c", str(config),
            # Several Envoys share this machine: no shared-memory hot restart between them.
            "--disable-hot-restart",
            # The span's localEndpoint.serviceName, like the pod name in the cluster.
            "--service-cluster", instance.name,
            "--service-node", instance.name,
            "--log-level", "warn",
            # The access log reaches the log file within half a second (Envoy's default: 10 s).
            "--file-flush-interval-msec", str(ENVOY_LOG_FLUSH_MS),
        ],
        health_url=f"http://{layout.host}:{instance.admin_port}/ready",
        env=tracers.resource_env(instance.name),
        listens=tuple(p for p in (instance.ingress_port, instance.egress_port) if p),
        admin_port=instance.admin_port,
    )


def programs(layout: LocalLayout, config_dir: Path, service_env: dict[str, str] | None = None,
             envoy: str | None = None, proxy_dir: Path | None = None, logs_dir: Path | None = None) -> list[Program]:
    """Every process of the local mesh, in start order (upstreams first).

    `envoy`: the binary to run (default: the one on PATH, which must exist). `proxy_dir`:
    where the trace proxy keeps what must outlive it (its Honeycomb spool). `logs_dir`: where
    the processes' logs go; the trace proxy is told, for its span panel.
    """
    proxy_options = ("--spool-dir", str(proxy_dir / "spool"), "--store-file", str(proxy_dir / "spans.sqlite")) \
        if proxy_dir else ()
    proxy_options += ("--settle", str(LOCAL_SETTLE_SECONDS), "--answered-settle", str(LOCAL_ANSWERED_SETTLE_SECONDS))
    envoy = envoy or envoy_config.envoy_binary()
    result = [
        Program(
            name=TRACE_PROXY_PROGRAM,
            command=trace_proxy_command(layout.host, layout.trace_proxy_port, *proxy_options,
                                        *(("--log-dir", str(logs_dir)) if logs_dir else ()), otlp_port=layout.otlp_port),
            health_url=f"{layout.trace_proxy_url}/healthz",
            env={},
            listens=tuple(p for p in (layout.trace_proxy_port, layout.otlp_port) if p),  # Zipkin, then OTLP
        )
    ]
    for instance in layout.envoys:
        if instance.app_port:
            result.append(_app_program(instance, layout, service_env or {}))
        config = envoy_config.local_path(instance, config_dir)
        result.append(_envoy_program(instance, layout, config, envoy))
    return result


def _quote(value: str) -> str:
    # supervisord expands %(name)s and splits environment= on commas outside quotes.
    return '"' + value.replace("%", "%%").replace('"', '\\"') + '"'


@dataclass
class ProcessState:
    name: str
    state: str  # supervisord's: RUNNING, STARTING, BACKOFF, EXITED, FATAL, ...
    pid: int
    healthy: bool
    health_url: str
    log: Path
    uptime: float | None = None  # seconds since it (re)started; None unless running
    restarts: int = 0  # times supervisord started it again since the mesh came up
    listens: tuple[int, ...] = ()
    admin_port: int | None = None


class LocalMesh:
    """One local mesh, identified by its state directory (config, socket, logs)."""

    def __init__(self, layout: LocalLayout | None = None, state_dir: Path | None = None,
                 service_env: dict[str, str] | None = None, tracer: str | None = None,
                 zipkin_encoding: str | None = None):
        self.state_dir = Path(state_dir or DEFAULT_STATE_DIR)
        self.layout = layout or self._saved_layout() or LocalLayout()
        self.service_env = dict(service_env or {})
        # The tracer every Envoy runs: given, else the one this mesh was started with.
        self.tracer = tracers.check(tracer or self._saved_tracer() or tracers.DEFAULT_TRACER)
        # None: the manifests' own (HTTP_JSON); "HTTP_PROTO" has every Zipkin tracer send protobuf.
        self.zipkin_encoding = zipkin_encoding

    # -- paths ---------------------------------------------------------------------------
    @property
    def conf_path(self) -> Path:
        return self.state_dir / "supervisord.conf"

    @property
    def envoy_dir(self) -> Path:
        return self.state_dir / "envoy"

    @property
    def trace_proxy_dir(self) -> Path:
        """The trace proxy's own files, kept across `local.down`/`up`: its store and Honeycomb spool."""
        return self.state_dir / "trace-proxy"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def socket_path(self) -> Path:
        return self.state_dir / "supervisor.sock"

    @property
    def pid_path(self) -> Path:
        return self.state_dir / "supervisord.pid"

    @property
    def layout_path(self) -> Path:
        return self.state_dir / "layout.json"

    @property
    def tracer_path(self) -> Path:
        return self.state_dir / "tracer"

    def _saved_tracer(self) -> str | None:
        try:
            saved = self.tracer_path.read_text().strip()
        except OSError:
            return None
        return saved if saved in tracers.TRACERS else None

    def _saved_layout(self) -> LocalLayout | None:
        try:
            return LocalLayout(**json.loads(self.layout_path.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    @property
    def supervisord_log(self) -> Path:
        return self.logs_dir / "supervisord.log"

    # -- supervisord ---------------------------------------------------------------------
    def supervisord_conf(self, progs: list[Program]) -> str:
        logs = self.logs_dir
        lines = [
            "; Written by meshtools.local.mesh for `inv local.up`; rewritten at every start.",
            "[unix_http_server]",
            f"file={self.socket_path}",
            "chmod=0700",
            "",
            "[supervisord]",
            f"logfile={self.supervisord_log}",
            f"pidfile={self.pid_path}",
            f"directory={PROJECT_ROOT}",
            "logfile_maxbytes=5MB",
            "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "",
            "[supervisorctl]",
            f"serverurl=unix://{self.socket_path}",
        ]
        for order, prog in enumerate(progs):
            lines += [
                "",
                f"[program:{prog.name}]",
                "command=" + " ".join(_quote(arg) for arg in prog.command),
                # Started in the order given (supervisord's default is by name): the trace proxy,
                # the slowest to answer, first.
                f"priority={100 + order}",
                # Restart what dies, like a pod's restartPolicy: Always.
                "autorestart=true",
                "startsecs=1",
                "startretries=10",
                # gunicorn has workers: signal the whole group so nothing outlives a stop.
                "stopasgroup=true",
                "killasgroup=true",
                "stopwaitsecs=5",
                f"stdout_logfile={logs / (prog.name + '.log')}",
                "stdout_logfile_maxbytes=5MB",
                "stdout_logfile_backups=1",
                "redirect_stderr=true",
            ]
            if prog.env:
                lines.append("environment=" + ",".join(f"{k}={_quote(v)}" for k, v in prog.env.items()))
        return "\n".join(lines) + "\n"

    def _rpc(self):
        transport = SupervisorTransport(None, None, f"unix://{self.socket_path}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor

    def supervisord_pid(self) -> int | None:
        """The pid of this mesh's supervisord if it is alive; stale pid files are ignored."""
        try:
            pid = int(self.pid_path.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        # After a crash the pid file may name a dead (zombie) or reused pid: never ours to signal.
        return pid if cmdline_contains(pid, "supervisord") else None

    def _supervisord_answers(self) -> bool:
        try:
            return self._rpc().getState()["statename"] == "RUNNING"
        except (OSError, xmlrpc.client.Error):
            return False

    def is_running(self) -> bool:
        return self.supervisord_pid() is not None and self._supervisord_answers()

    def _clear_stale_state(self) -> None:
        # After a crash or a killed supervisord, its files stay behind; they mean nothing now.
        for path in (self.pid_path, self.socket_path):
            path.unlink(missing_ok=True)

    # -- lifecycle -----------------------------------------------------------------------
    def check_can_start(self) -> None:
        """Raise MeshError when `up` would fail before starting anything."""
        pid = self.supervisord_pid()
        if pid is not None:
            if self._supervisord_answers():
                raise MeshError("The local mesh is already up: `inv local.status` shows it, `inv local.down` stops it.")
            raise MeshError(f"A supervisord for this mesh (pid {pid}) is not answering; "
                            "stop it with `inv local.down` and try again.")
        taken = [port for port in self.layout.ports() if port_in_use(self.layout.host, port)]
        if taken:
            raise MeshError(
                f"Port {', '.join(map(str, taken))} on {self.layout.host} is already in use; stop what listens there "
                "(`ss -ltnp` shows it) or start the mesh on other ports with `inv local.up --front-port`, "
                "`--trace-proxy-port`, `--otlp-port` or `--base-port` (`inv demo` then uses it)."
            )

    def up(self, timeout: float = 90.0) -> requests.Response:
        """Start every process and return once a request passes end to end, with the trace proxy
        up before it: that request's reply, whose x-request-id finds the mesh's first trace."""
        self.check_can_start()
        self._clear_stale_state()
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        progs = programs(self.layout, self.envoy_dir, self.service_env, proxy_dir=self.trace_proxy_dir,
                         logs_dir=self.logs_dir)
        for instance in self.layout.envoys:
            envoy_config.write_local(instance, self.layout, self.envoy_dir, self.tracer, self.zipkin_encoding)
        self.conf_path.write_text(self.supervisord_conf(progs))
        self.layout_path.write_text(json.dumps(asdict(self.layout)))
        self.tracer_path.write_text(self.tracer + "\n")
        # supervisord inherits this environment, so a Honeycomb key reaches the trace proxy
        # without appearing in any config file or argument list.
        result = subprocess.run(
            [sys.executable, "-m", SUPERVISORD_MODULE, "-c", str(self.conf_path)],
            capture_output=True, text=True, cwd=PROJECT_ROOT,
        )
        if result.returncode != 0:
            raise MeshError(f"supervisord did not start: {(result.stderr or result.stdout).strip()}")
        try:
            return self.wait_until_serving(timeout)
        except BaseException:
            # Never leave half a mesh behind: not on a timeout, not on Ctrl-C.
            self.down()
            raise

    def wait_until_serving(self, timeout: float) -> requests.Response:
        """Every process answering on its own (the trace proxy among them: the Envoys' spans of a
        request sent before it listens are lost), then one request through the whole mesh,
        whose reply comes back.

        That request makes a trace; sent before every app answered, it made an ERROR 503 trace the
        user did not cause (a fresh mesh's first screen): so not before.
        """
        url = f"{self.layout.front_url}/echo/local-up"
        deadline = time.monotonic() + timeout
        self.wait_until_answering(deadline)
        try:
            return wait_until_ok(url, max(1.0, deadline - time.monotonic()),
                                 accept=lambda reply: reply.status_code == 200, request_timeout=10,
                                 interval=READY_POLL)
        except NotReady as exc:
            last = exc.last
        not_ready = [p.name for p in self.status() if not p.healthy]
        raise MeshError(
            f"The mesh did not serve {url} within {timeout:.0f} s (last: {last}; not ready: "
            f"{', '.join(not_ready) or 'none'}); see the logs in {self.logs_dir}."
        )

    def wait_until_answering(self, deadline: float) -> None:
        """Return once every process answers its health check; MeshError at `deadline`, or at once
        when one exits as it starts (a port taken, code that does not import), naming it and its
        last log line.

        Readiness is the health check itself, not supervisord's RUNNING: supervisord says RUNNING
        only once a process has lived `startsecs` (1 s) and its next tick comes, up to a second
        after every process already answered. Only the processes not yet answering are probed,
        each first by a bare connect, so the probing takes little of the CPU they start on.
        """
        waiting = {p.name: p.health_url for p in programs(self.layout, self.envoy_dir, envoy="envoy")}
        next_state_check = 0.0
        while waiting:
            now = time.monotonic()
            if now >= next_state_check:  # an RPC to supervisord: a few times a second is enough
                self._raise_if_exited(waiting)
                next_state_check = now + STATE_CHECK_INTERVAL
            waiting = {name: url for name, url in waiting.items() if not _health_answers(url)}
            if not waiting:
                return
            if time.monotonic() >= deadline:
                raise MeshError(f"{', '.join(sorted(waiting))} did not answer within the start's deadline; "
                                f"`inv logs {' '.join(sorted(waiting))}` shows why.")
            time.sleep(READY_POLL)

    def _raise_if_exited(self, names: Iterable[str]) -> None:
        try:
            infos = {info["name"]: info for info in self._rpc().getAllProcessInfo()}
        except (OSError, xmlrpc.client.Error):
            raise MeshError(f"supervisord stopped answering while the mesh started; see {self.supervisord_log}.") \
                from None
        exited = sorted(name for name in names if infos.get(name, {}).get("statename") in EXITED_STATES)
        if exited:
            name = exited[0]
            said = last_line(self.logs_dir / f"{name}.log")
            raise MeshError(f"{name} exited as it started" + (f": {said}" if said else "")
                            + f"; `inv logs {name}` shows its whole log" +
                            (f" (also exited: {', '.join(exited[1:])})" if exited[1:] else "") + ".")

    def down(self, timeout: float = 30.0) -> bool:
        """Stop every process and supervisord. Returns False when nothing was running."""
        pid = self.supervisord_pid()
        if pid is None:
            self._clear_stale_state()
            return False
        deadline = time.monotonic() + timeout
        # On SIGTERM supervisord stops its programs one after the other; signalling them all
        # at once first makes stopping the mesh take one process's time, not the sum.
        try:
            self._rpc().stopAllProcesses(False)
            while time.monotonic() < deadline and any(
                info["statename"] in ("RUNNING", "STARTING", "STOPPING", "BACKOFF")
                for info in self._rpc().getAllProcessInfo()
            ):
                time.sleep(0.05)
        except (OSError, xmlrpc.client.Error):
            pass  # supervisord is not answering: its SIGTERM below still stops what it runs
        # SIGTERM makes supervisord stop whatever still runs (as process groups) and exit.
        os.kill(pid, signal.SIGTERM)
        # Waiting on the process itself, not its pid file: supervisord removes that file before it
        # is done (seen: one still running after a start whose apps had all exited).
        while time.monotonic() < deadline and _supervisord_alive(pid):
            time.sleep(0.05)
        if _supervisord_alive(pid):
            os.kill(pid, signal.SIGKILL)
        # A gunicorn master can exit while its workers, which hold the listening socket too,
        # are still finishing: wait for the ports, so `local.up` right after never finds them taken.
        while time.monotonic() < deadline and any(port_in_use(self.layout.host, p) for p in self.layout.ports()):
            time.sleep(0.05)
        self._clear_stale_state()
        return True

    def stop_process(self, name: str) -> None:
        """Stop one process (it stays stopped until `start_process`): a fault to watch."""
        self._rpc().stopProcess(name)

    def start_process(self, name: str) -> None:
        self._rpc().startProcess(name)

    # -- compose-style controls (`inv local.stop/start/restart NAME…`) -------------------
    def program_names(self) -> list[str]:
        """Every process of this mesh by name, in start order."""
        return [p.name for p in programs(self.layout, self.envoy_dir, envoy="envoy")]

    def choose(self, names: Iterable[str]) -> list[str]:
        """The processes NAMES mean (as `inv logs` takes them); MeshError naming the known ones."""
        try:
            return expand(self.program_names(), names)
        except UnknownName as exc:
            raise MeshError(str(exc)) from None

    def stop_processes(self, names: list[str], timeout: float = 30.0) -> list[str]:
        """Stop NAMES at once (each stays stopped until started); the ones that were running."""
        rpc = self._rpc()
        stopped = []
        for name in names:
            try:
                rpc.stopProcess(name, False)  # not waiting: all of them stop in one process's time
                stopped.append(name)
            except xmlrpc.client.Fault as exc:
                if exc.faultCode != Faults.NOT_RUNNING:
                    raise
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(
                rpc.getProcessInfo(name)["statename"] in ("RUNNING", "STARTING", "STOPPING", "BACKOFF")
                for name in stopped):
            time.sleep(0.02)
        return stopped

    def start_processes(self, names: list[str], timeout: float = 60.0) -> list[str]:
        """Start NAMES at once and return once each answers its health check; the ones that were stopped.

        MeshError names any that did not answer in time, and where its log is.
        """
        rpc = self._rpc()
        started = []
        for name in names:
            try:
                rpc.startProcess(name, False)
                started.append(name)
            except xmlrpc.client.Fault as exc:
                if exc.faultCode != Faults.ALREADY_STARTED:
                    raise
        urls = {p.name: p.health_url for p in programs(self.layout, self.envoy_dir, envoy="envoy")}
        waiting = set(names)
        deadline = time.monotonic() + timeout
        while waiting and time.monotonic() < deadline:
            waiting = {name for name in waiting if not _answers(urls[name], timeout=1)}
            if waiting:
                time.sleep(0.02)
        if waiting:
            raise MeshError(f"{', '.join(sorted(waiting))} did not answer within {timeout:.0f} s; "
                            f"`inv logs {' '.join(sorted(waiting))}` shows why.")
        return started

    def restart_processes(self, names: list[str], timeout: float = 60.0) -> None:
        """Stop NAMES, then start them again, back once each answers (as `docker compose restart`)."""
        self.stop_processes(names, timeout)
        self.start_processes(names, timeout)

    def status(self) -> list[ProcessState]:
        # Only names, ports and health URLs are read here: any binary name does, found or not.
        known = {p.name: p for p in programs(self.layout, self.envoy_dir, envoy="envoy", proxy_dir=self.trace_proxy_dir)}
        try:
            infos = self._rpc().getAllProcessInfo()
        except (OSError, xmlrpc.client.Error):
            return []
        spawns = self.spawn_counts()
        result = []
        for info in infos:
            prog = known.get(info["name"])
            url = prog.health_url if prog else ""
            running = info["statename"] == "RUNNING"
            result.append(
                ProcessState(
                    name=info["name"],
                    state=info["statename"],
                    pid=info["pid"],
                    healthy=running and _answers(url),
                    health_url=url,
                    log=Path(info["stdout_logfile"]),
                    uptime=max(0, info["now"] - info["start"]) if running else None,
                    restarts=max(0, spawns.get(info["name"], 1) - 1),
                    listens=prog.listens if prog else (),
                    admin_port=prog.admin_port if prog else None,
                )
            )
        return result

    def spawn_counts(self) -> dict[str, int]:
        """How often supervisord started each process since this mesh came up (its log says)."""
        counts: dict[str, int] = {}
        try:
            text = self.supervisord_log.read_text(errors="replace")
        except OSError:
            return counts
        # supervisord appends to its log: count from this supervisord's own start line.
        start = text.rfind("supervisord started with pid")
        for match in SPAWNED.finditer(text, max(start, 0)):
            counts[match["name"]] = counts.get(match["name"], 0) + 1
        return counts


def _supervisord_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return cmdline_contains(pid, "supervisord")


def _health_answers(url: str) -> bool:
    """`_answers`, after a bare connect: a port nothing listens on yet costs no HTTP request."""
    parts = urlsplit(url)
    return accepts_connections(parts.hostname, parts.port, timeout=0.5) and _answers(url)


def last_line(log: Path, tail_bytes: int = 4096) -> str:
    """The last non-empty line of a log file ("" when there is none)."""
    try:
        with log.open("rb") as f:
            f.seek(max(0, log.stat().st_size - tail_bytes))
            lines = [line.strip() for line in f.read().decode(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def _answers(url: str, timeout: float = 2) -> bool:
    try:
        return requests.get(url, timeout=timeout).status_code == 200
    except requests.RequestException:
        return False
