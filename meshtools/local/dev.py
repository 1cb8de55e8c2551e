"""`inv dev` on the local mesh: watch the sources, restart only what a change affects.

- service/ (the Flask app): each app process in turn (service2, then each service1 replica)
  gets SIGHUP: gunicorn starts a worker with the new code and retires the old one while its
  listening socket stays open, so no request is refused, even for service2's single replica.
- manifests/base/envoy/NAME.yaml: the Envoys that run it, one at a time, once the new
  rendering passes `envoy --mode validate`.
- trace_proxy/: the trace proxy (its stored traces start afresh).

A change is checked before anything restarts (the app and the proxy must import and build,
an Envoy config must validate); one that does not start leaves the old processes serving
and is reported with its error. Each change prints one line: what changed, what restarted,
and how long after the save the mesh served again.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import requests
import yaml

from meshtools.local import envoy_config
from meshtools.local.mesh import TRACE_PROXY_PROGRAM, LocalMesh
from meshtools.shared import envoy_errors
from meshtools.shared.pids import cmdline_contains
from meshtools.shared.topology import ENVOY_CONFIG_FILES, PROJECT_ROOT, TRACE_PROXY, Instance
from meshtools.shared.watch import SERVICE_DIR, TRACE_PROXY_DIR, relative, under, watch_changes, watched

CHECK_APP = "import service; service.create_app()"
CHECK_TRACE_PROXY = "import trace_proxy.server, trace_proxy.app"
READY_TIMEOUT = 30.0  # seconds one restarted process may take to serve
POLL = 0.02


class DevError(RuntimeError):
    """A change that cannot start; the old processes keep serving."""


@dataclass
class Plan:
    """What a set of changed files affects."""

    service: list[Path] = field(default_factory=list)
    trace_proxy: list[Path] = field(default_factory=list)
    envoy: dict[str, Path] = field(default_factory=dict)  # FRONT/SERVICE1/SERVICE2 → its config

    @classmethod
    def of(cls, paths: Iterable[Path]) -> "Plan":
        plan = cls()
        by_file = {name: service for service, name in ENVOY_CONFIG_FILES.items()}
        for path in sorted(set(paths)):
            if not watched(path):
                continue
            if under(path, SERVICE_DIR):
                plan.service.append(path)
            elif under(path, TRACE_PROXY_DIR):
                plan.trace_proxy.append(path)
            else:
                plan.envoy[by_file[path.name]] = path
        return plan

    def __bool__(self) -> bool:
        return bool(self.service or self.trace_proxy or self.envoy)


def python_check(code: str, root: Path = PROJECT_ROOT) -> None:
    """Run `code` in a fresh interpreter from `root`; DevError with Python's own words."""
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    if result.returncode:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        where = next((line.strip() for line in reversed(lines) if line.strip().startswith('File "')), "")
        raise DevError(f"{lines[-1] if lines else 'it exits ' + str(result.returncode)}"
                       + (f" ({where.replace(str(root) + '/', '')})" if where else ""))


def children(pid: int) -> set[int]:
    """The child processes of `pid` (gunicorn's workers)."""
    result = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return {int(p) for p in result.stdout.split()}


def answers(url: str, timeout: float = 10.0) -> bool:
    try:
        return requests.get(url, timeout=timeout).status_code == 200
    except requests.RequestException:
        return False


def wait(condition: Callable[[], bool], what: str, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise DevError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(POLL)


class DevLoop:
    """Applies changes to one running local mesh; `watch` feeds it the file system's."""

    def __init__(self, mesh: LocalMesh, source_root: Path = PROJECT_ROOT):
        self.mesh = mesh
        self.layout = mesh.layout
        self.source_root = source_root  # where the new code is imported from to check it

    # -- what runs -------------------------------------------------------------------------
    def _info(self, name: str) -> dict:
        return self.mesh._rpc().getProcessInfo(name)

    def app_programs(self) -> list[tuple[str, str]]:
        """(program, health URL) of every app process: service2 first, then each service1 replica."""
        return [(f"{i.name}-app", f"http://{self.layout.host}:{i.app_port}/healthz")
                for i in [*self.layout.service2, *self.layout.service1]]

    def envoy_programs(self, service: str) -> list[tuple[Instance, str]]:
        return [(i, f"{i.name}-envoy" if i.app_port else i.name) for i in self.layout.envoys if i.service == service]

    # -- restarts --------------------------------------------------------------------------
    def reload_app(self, program: str, health_url: str) -> tuple[int, set[int]]:
        """SIGHUP to the app's gunicorn: a new worker with the new code, the old one retired.

        Returns the master's pid and its old workers, which may still be finishing (see _service).
        """
        master = self._info(program)["pid"]
        if Path("/proc/self").exists() and cmdline_contains(master, "python:service.gunicorn_conf"):
            # Started before `inv dev` existed: its master holds the old code and would hand it on.
            raise DevError(f"{program} was started by an older version of the tasks; restart the mesh once "
                           "(`inv local.down`, then `inv dev`)")
        old = children(master)
        self.mesh._rpc().signalProcess(program, "HUP")
        # The master retires the old worker (it stops accepting, finishes what it serves) as soon
        # as it has started the new one: a new worker that answers is the new code serving.
        wait(lambda: bool(children(master) - old) and answers(health_url), f"{program} serving the new code")
        return master, old

    def restart(self, program: str, health_url: str) -> None:
        """Stop and start one process under supervisord; back once it answers `health_url`."""
        rpc = self.mesh._rpc()
        if self._info(program)["statename"] in ("RUNNING", "STARTING", "BACKOFF"):
            rpc.stopProcess(program, True)
        rpc.startProcess(program, False)
        wait(lambda: answers(health_url), f"{program} answering {health_url}")

    def served(self) -> float:
        """When (time.time()) a request that then passed end to end through the front was sent.

        Its send time, not its answer's: the answer waits for the slow stage (up to 3.3 s),
        which is the demo's, not the restart's.
        """
        sent = [0.0]

        def passes() -> bool:
            sent[0] = time.time()
            return answers(f"{self.layout.front_url}/echo/inv-dev")

        wait(passes, "a request through front-envoy")
        return sent[0]

    # -- one change ------------------------------------------------------------------------
    def apply(self, paths: Iterable[Path], saved_at: float | None = None) -> list[str]:
        """Restart what `paths` affect; one line per kind of change (a failed one says why)."""
        plan = Plan.of(paths)
        saved_at = saved_at if saved_at is not None else time.time()
        lines = []
        for kind, step in (("trace_proxy", self._trace_proxy), ("service", self._service), ("envoy", self._envoy)):
            changed = getattr(plan, kind)
            if not changed:
                continue
            files = ", ".join(relative(p) for p in (changed.values() if isinstance(changed, dict) else changed))
            try:
                restarted = step(changed)
                served_at = self.served()
            except DevError as exc:
                lines.append(f"{files} changed: NOT restarted, the running processes keep serving: {exc}")
                continue
            except Exception as exc:  # supervisord or a process gone away: say so, keep watching
                lines.append(f"{files} changed: restart failed ({type(exc).__name__}: {exc}); "
                             "`inv local.status` shows the processes")
                continue
            lines.append(f"{files} changed → restarted {restarted}; served again {served_at - saved_at:.1f} s "
                         "after the save")
        return lines

    def _service(self, _paths) -> str:
        python_check(CHECK_APP, self.source_root)
        programs = self.app_programs()
        retiring = [self.reload_app(program, health) for program, health in programs]
        # A retired gthread worker still answers on its open keep-alive connections (Envoy's)
        # for up to 2 s: only once every old worker is gone is every answer the new code's.
        wait(lambda: not any(children(master) & old for master, old in retiring), "the old app workers exiting")
        return f"{', '.join(p for p, _ in programs)} (one at a time)"

    def _trace_proxy(self, _paths) -> str:
        python_check(CHECK_TRACE_PROXY, self.source_root)
        self.restart(TRACE_PROXY_PROGRAM, f"{self.layout.trace_proxy_url}/healthz")
        return f"{TRACE_PROXY} (its stored traces start afresh)"

    def _envoy(self, changed: dict[str, Path]) -> str:
        restarted = []
        for service in changed:
            programs = self.envoy_programs(service)
            self._validate(programs[0][0])
            for instance, program in programs:
                envoy_config.write_local(instance, self.layout, self.mesh.envoy_dir, self.mesh.tracer)
                self.restart(program, f"http://{self.layout.host}:{instance.admin_port}/ready")
                restarted.append(program)
        return f"{', '.join(restarted)}" + (" (one at a time)" if len(restarted) > 1 else "")

    def _validate(self, instance: Instance) -> None:
        try:
            config = envoy_config.render_local(instance, self.layout, self.mesh.tracer)
        except Exception as exc:  # YAML that does not parse, a listener or cluster renamed
            raise DevError(f"{envoy_config.source_path(instance.service).name} cannot be read: "
                           f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "envoy.yaml"
            path.write_text(yaml.safe_dump(config, sort_keys=False))
            said = envoy_errors.refusal(path, envoy_config.source_path(instance.service), envoy_config.envoy_binary())
        if said:
            raise DevError(f"Envoy refused it: {said}")

    # -- the watcher -----------------------------------------------------------------------
    def watch(self, emit: Callable[[str], None], stop_event=None) -> None:
        """Apply every change until Ctrl-C (KeyboardInterrupt) or `stop_event` is set."""
        for paths, saved_at in watch_changes(stop_event):
            stamp = time.strftime("%H:%M:%S")
            for line in self.apply(paths, saved_at):
                emit(f"{stamp} {line}")
