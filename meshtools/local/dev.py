"""`inv dev` on the local mesh: watch the sources, restart only what a change affects.

- service/ (the Flask app): every app process gets SIGHUP at once: gunicorn starts a worker
  with the new code and retires the old one while its listening socket stays open, so no
  request is refused, even for service2's single replica.
- manifests/base/envoy/NAME.yaml: the Envoys that run it, one at a time, once the new
  rendering passes `envoy --mode validate`.
- trace_proxy/: the trace proxy (its stored traces start afresh).

A change is checked before anything restarts (the app and the proxy must import and build, in
a fork of a warm interpreter, meshtools.local.checker; an Envoy config must validate); one
that does not start leaves the old processes serving and is reported with its error. Each change prints one line: what changed, what restarted,
and how long after the save the mesh served again.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
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
    _raise_failed(result.returncode, result.stderr, root)


def _raise_failed(returncode: int, stderr: str, root: Path) -> None:
    if returncode:
        lines = [line for line in stderr.strip().splitlines() if line.strip()]
        where = next((line.strip() for line in reversed(lines) if line.strip().startswith('File "')), "")
        raise DevError(f"{lines[-1] if lines else 'it exits ' + str(returncode)}"
                       + (f" ({where.replace(str(root) + '/', '')})" if where else ""))


class Checker:
    """`python_check` in a fork of a warm interpreter (meshtools.local.checker): Flask is imported
    once, not on every save. Until `start` (and if the warm one is gone) a fresh interpreter checks."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()  # one check at a time; `start` may still be running in the background

    def start(self) -> None:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._proc = subprocess.Popen([sys.executable, "-m", "meshtools.local.checker"], cwd=PROJECT_ROOT,
                                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                self._proc.stdout.readline()  # {"ready": true}: its libraries are imported

    def start_soon(self) -> None:
        """`start` in the background: the watcher is set up meanwhile, and a save checks once it is ready."""
        threading.Thread(target=self.start, daemon=True).start()

    def check(self, code: str, root: Path = PROJECT_ROOT) -> None:
        with self._lock:
            reply = self._ask(code, root) if self._proc is not None else None
        if reply is None:
            python_check(code, root)
            return
        _raise_failed(reply["exit"], reply["stderr"], root)

    def _ask(self, code: str, root: Path) -> dict | None:
        try:
            self._proc.stdin.write(json.dumps({"code": code, "root": str(root)}) + "\n")
            self._proc.stdin.flush()
            return json.loads(self._proc.stdout.readline())
        except (OSError, ValueError):  # it is gone: the next checks run in a fresh interpreter
            self._proc = None
            return None

    def close(self) -> None:
        with self._lock:
            if self._proc is not None:
                self._proc.stdin.close()  # it ends when its input does
                try:
                    self._proc.wait(5)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                self._proc = None


def children(pid: int) -> set[int]:
    """The child processes of `pid` (gunicorn's workers).

    Read from /proc where it can be: asked every 20 ms while new workers boot, a `pgrep` process
    each time took CPU from the very workers being waited for (4 apps: 200 processes a second).
    """
    try:  # a gunicorn master forks its workers from its main thread, whose task id is its pid
        return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    except FileNotFoundError:
        if Path("/proc/self/task").exists():
            return set()  # procfs, and `pid` is gone
    except OSError:
        pass
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
        self.checker = Checker()

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
    def reload_apps(self, programs: list[tuple[str, str]]) -> list[tuple[int, set[int]]]:
        """SIGHUP to each app's gunicorn at once: new workers with the new code, the old ones retired.

        No request is refused meanwhile: each master keeps its listening socket open and starts
        the new worker before it retires the old one. Returns each master's pid and its old
        workers, which may still be finishing (see _service).
        """
        retiring = []
        for program, _ in programs:
            master = self._info(program)["pid"]
            if Path("/proc/self").exists() and cmdline_contains(master, "python:service.gunicorn_conf"):
                # Started before `inv dev` existed: its master holds the old code and would hand it on.
                raise DevError(f"{program} was started by an older version of the tasks; restart the mesh once "
                               "(`inv local.down`, then `inv dev`)")
            retiring.append((master, children(master)))
        for program, _ in programs:
            self.mesh._rpc().signalProcess(program, "HUP")
        # A master retires its old worker (it stops accepting, finishes what it serves) as soon
        # as it has started the new one: a new worker that answers is the new code serving.
        for (program, health_url), (master, old) in zip(programs, retiring):
            wait(lambda: bool(children(master) - old) and answers(health_url), f"{program} serving the new code")
        return retiring

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
        self.checker.check(CHECK_APP, self.source_root)
        programs = self.app_programs()
        retiring = self.reload_apps(programs)
        # A retired gthread worker still answers on its open keep-alive connections until they
        # close (the sidecars close idle ones after 0.5 s): only once every old worker is gone
        # is every answer the new code's.
        wait(lambda: not any(children(master) & old for master, old in retiring), "the old app workers exiting")
        return f"{', '.join(p for p, _ in programs)} (gracefully, all at once)"

    def _trace_proxy(self, _paths) -> str:
        self.checker.check(CHECK_TRACE_PROXY, self.source_root)
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
        self.checker.start_soon()  # warm before the first save, not on it
        try:
            for paths, saved_at in watch_changes(stop_event):
                stamp = time.strftime("%H:%M:%S")
                for line in self.apply(paths, saved_at):
                    emit(f"{stamp} {line}")
        finally:
            self.checker.close()
