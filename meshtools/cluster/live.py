"""`inv dev --cluster` on a dev-mode stack (`inv deploy --dev`): changes served without a build.

- service/ or trace_proxy/: the changed files are written into the running pods' code volume
  (manifests/dev) and gunicorn there gets SIGHUP: a new worker with the new code, the old one
  retired, as locally. No image build, no pod restart. A change to the trace proxy's master
  modules (server, settings, cli) restarts its container instead (the pod and its volume stay).
- an Envoy config: the dev overlay is applied again; only the Deployment that mounts that
  ConfigMap (its name is a hash of the file) rolls, and the new pods get the synced code.
- dependencies (pyproject.toml, service.requirements.txt, service.Dockerfile): the image is
  built and the dev stack deployed again (meshtools.cluster.dev), and the line says so.

`LiveUpdate(target).apply(paths, saved_at)` is what the watcher calls; each change gives one
line: what changed, what was done, and how long after the save the pods served it.
"""
from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from invoke.exceptions import Exit, UnexpectedExit

from meshtools.cluster import dev as rebuild
from meshtools.cluster import stack
from meshtools.cluster.exec_session import PodSession, SessionClosed
from meshtools.cluster.kubectl import Kubectl
from meshtools.cluster.target import Target
from meshtools.shared.topology import ENVOY_CONFIG_FILES, PROJECT_ROOT, SERVICE1, SERVICE2, TRACE_PROXY
from meshtools.shared.watch import (SERVICE_DIR, TRACE_PROXY_DIR, in_tree, relative, under, watch_changes,
                                    watched)

CODE_DIR = "/srv/dev"  # the code volume in the dev overlay (manifests/dev)
CODE_VOLUME = "code"
DEPENDENCY_FILES = ("pyproject.toml", "service.requirements.txt", "service.Dockerfile")
# The app container of each Deployment that runs Python, and the port its health check answers on.
PYTHON_PODS = {SERVICE1: ("app", 8080), SERVICE2: ("app", 8080), TRACE_PROXY: (TRACE_PROXY, 9411)}
# Modules the trace proxy's gunicorn master imports itself: a new worker would not see their change.
TRACE_PROXY_MASTER = {"__init__.py", "__main__.py", "server.py", "settings.py", "cli.py"}
RELOAD_TIMEOUT = 30.0

# Runs in the pod (python -c): writes the files of an order into the code volume, signals
# gunicorn's master (pid 1), and for SIGHUP waits until a new worker answers its health check and
# the old workers are gone; prints the seconds it took. One order on stdin (a `kubectl exec` per
# pod and change), or with the argument `serve` one order a line for as long as stdin stays
# open, each answered by a line "ok SECONDS" or "error WHY" (a session kept open, exec_session.py).
IN_POD = r"""
import json, os, signal, sys, time, urllib.request
def workers():
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[1] == "1":
                    found.add(int(pid))
        except OSError:
            pass
    return found
def answers(order):
    try:
        return urllib.request.urlopen(order["health"], timeout=2).status == 200
    except OSError:
        return False
def apply(order):
    for path, text in order["files"].items():
        target = os.path.join(order["root"], path)
        if text is None:
            if os.path.exists(target):
                os.remove(target)
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target + ".new", "w") as out:
            out.write(text)
        os.replace(target + ".new", target)
    started, old = time.monotonic(), workers()
    if order["signal"] != "HUP":  # the container ends with its pid 1, and this process with it: answer first
        print("0.00", flush=True)
    os.kill(1, getattr(signal, "SIG" + order["signal"]))
    deadline = started + order["timeout"]
    if order["signal"] == "HUP":
        while not (workers() - old and answers(order)):
            if time.monotonic() > deadline:
                raise SystemExit("no new worker answered within %d s" % order["timeout"])
            time.sleep(0.02)
        while workers() & old and time.monotonic() < deadline:
            time.sleep(0.02)
    return "%.2f" % (time.monotonic() - started)
if sys.argv[1:] == ["serve"]:
    for line in sys.stdin:
        try:
            print("ok " + apply(json.loads(line)), flush=True)
        except SystemExit as exc:
            print("error %s" % exc, flush=True)
else:
    print(apply(json.load(sys.stdin)))
"""


@dataclass
class Plan:
    """What a set of changed files asks for on the cluster."""

    code: dict[tuple[str, ...], list[Path]] = field(default_factory=dict)  # Deployments → changed Python files
    envoy: list[str] = field(default_factory=list)  # Deployments whose Envoy ConfigMap changed
    dependencies: list[Path] = field(default_factory=list)

    @classmethod
    def of(cls, paths: Iterable[Path], root: Path = PROJECT_ROOT) -> "Plan":
        plan = cls()
        by_file = {name: service for service, name in ENVOY_CONFIG_FILES.items()}
        for path in sorted(set(paths)):
            if path.name in DEPENDENCY_FILES and path.parent.resolve() == root.resolve():
                plan.dependencies.append(path)
            elif not watched(path, root):
                continue
            elif under(path, in_tree(SERVICE_DIR, root)):
                plan.code.setdefault((SERVICE2, SERVICE1), []).append(path)
            elif under(path, in_tree(TRACE_PROXY_DIR, root)):
                plan.code.setdefault((TRACE_PROXY,), []).append(path)
            elif by_file.get(path.name) and by_file[path.name] not in plan.envoy:
                plan.envoy.append(by_file[path.name])
        return plan

    def __bool__(self) -> bool:
        return bool(self.code or self.envoy or self.dependencies)


def is_dev_stack(kubectl: Kubectl) -> bool:
    """Whether the deployed stack is the dev overlay's (its app pods have the code volume)."""
    result = kubectl.run("get", "deployment", SERVICE1, "-o", "jsonpath={.spec.template.spec.volumes[*].name}",
                         capture=True, check=False, timeout=30)
    return result.returncode == 0 and CODE_VOLUME in result.stdout.split()


def pods_of(kubectl: Kubectl, deployment: str) -> list[str]:
    """The running pods of one Deployment (its `app` label), by name."""
    result = kubectl.run("get", "pods", "--selector", f"app={deployment}", "--field-selector=status.phase=Running",
                         "-o", "jsonpath={.items[*].metadata.name}", capture=True, timeout=30)
    return result.stdout.split()


def restart_count(kubectl: Kubectl, deployment: str) -> int:
    """How often the containers of a Deployment's pods restarted, all together."""
    result = kubectl.run("get", "pods", "--selector", f"app={deployment}", "-o",
                         "jsonpath={.items[*].status.containerStatuses[*].restartCount}", capture=True, timeout=30)
    return sum(int(n) for n in result.stdout.split() if n.isdigit())


def file_order(paths: Iterable[Path], root: Path = PROJECT_ROOT) -> dict[str, str | None]:
    """{path in the code volume: its text, or None when it was deleted}."""
    return {str(p.resolve().relative_to(root.resolve())): (p.read_text() if p.exists() else None) for p in paths}


def sync(kubectl: Kubectl, deployment: str, files: dict[str, str | None], signal: str,
         known: Iterable[str] = (), sessions: dict[str, PodSession] | None = None) -> tuple[list[float], list[str]]:
    """Write `files` into every pod of `deployment` at once and signal its gunicorn; the seconds
    each took, and the pods it has now.

    `known`: the pods of the last sync, started on at once while the list is read again (a
    kubectl call saved from the time to served); a pod that appeared since is synced too, and
    one that has gone since is passed over. `sessions`: open exec sessions by pod, used for a
    reload where one is alive (no kubectl start-up), opened for the pods that lack one, closed
    for the pods gone."""
    container, port = PYTHON_PODS[deployment]
    order = json.dumps({"files": files, "root": CODE_DIR, "signal": signal, "timeout": RELOAD_TIMEOUT,
                        "health": f"http://127.0.0.1:{port}/healthz"})
    use_sessions = sessions is not None and signal == "HUP"

    def one(pod: str) -> float | str:
        session = sessions.get(pod) if use_sessions else None
        if session is not None:
            try:
                return session.apply(order, RELOAD_TIMEOUT + 30)
            except SessionClosed:
                sessions.pop(pod, None)  # gone with its pod, or its kubectl ended: a one-off exec instead
            except RuntimeError as exc:
                return str(exc)
        result = kubectl.run("exec", "-i", pod, "-c", container, "--", "python", "-c", IN_POD, input=order,
                             capture=True, check=False, timeout=RELOAD_TIMEOUT + 30)
        if result.returncode != 0 and not (signal != "HUP" and result.stdout.strip()):
            said = (result.stderr or result.stdout).strip().splitlines()
            return f"{pod}: {said[-1] if said else 'kubectl exec failed'}"
        return float(result.stdout.split()[-1])

    with ThreadPoolExecutor(max_workers=8) as pool:
        started = {pod: pool.submit(one, pod) for pod in known}
        pods = pods_of(kubectl, deployment)
        if not pods:
            raise Exit(f"no running pod of {deployment}")
        started.update({pod: pool.submit(one, pod) for pod in pods if pod not in started})
        outcomes = {pod: future.result() for pod, future in started.items()}
    if use_sessions:
        open_sessions(kubectl, deployment, pods, sessions)
    for pod in pods:
        if isinstance(outcomes[pod], str):
            raise Exit(outcomes[pod])
    return [outcomes[pod] for pod in pods], pods


def open_sessions(kubectl: Kubectl, deployment: str, pods: list[str], sessions: dict[str, PodSession]) -> None:
    """Sessions for `pods` of `deployment` that have none alive; close those of its pods gone."""
    for pod in [p for p in sessions if p.startswith(f"{deployment}-") and p not in pods]:
        sessions.pop(pod).close()
    for pod in pods:
        if pod not in sessions or not sessions[pod].alive():
            sessions[pod] = PodSession(kubectl, pod, PYTHON_PODS[deployment][0], IN_POD)


class LiveUpdate:
    """Applies changes to one dev-mode stack; `watch` feeds it the file system's."""

    def __init__(self, target: Target, root: Path = PROJECT_ROOT,
                 fallback: Callable[[Target, list[Path], float], str | None] = rebuild.apply):
        self.target = target
        self.root = root
        self.fallback = fallback  # build + deploy (dev stack), for what cannot be synced
        self.kubectl = stack.open_target(target)
        self.pods: dict[str, list[str]] = {}  # by Deployment, as the last sync found them
        self.sessions: dict[str, PodSession] = {}  # exec sessions kept open, by pod

    def prepare(self) -> None:
        """Open an exec session into each Python pod now, so the first change finds them open
        (they only save time: without them every change does a one-off exec)."""
        for deployment in (SERVICE1, SERVICE2, TRACE_PROXY):
            try:
                self.pods[deployment] = pods_of(self.kubectl, deployment)
            except (Exit, UnexpectedExit):
                continue
            open_sessions(self.kubectl, deployment, self.pods[deployment], self.sessions)

    def close(self) -> None:
        for session in self.sessions.values():
            session.close()
        self.sessions.clear()

    def apply(self, paths: Iterable[Path], saved_at: float | None = None) -> list[str]:
        paths = list(paths)
        plan = Plan.of(paths, self.root)
        saved_at = saved_at if saved_at is not None else time.time()
        if plan.dependencies:
            files = ", ".join(p.name for p in plan.dependencies)
            line = self.fallback(self.target, plan.dependencies, saved_at, True)
            return [f"{files} changed: dependencies are built into the image, so no live update: "
                    + (line or "nothing was deployed")]
        lines = []
        for deployment in plan.envoy:
            lines.append(self._step(ENVOY_CONFIG_FILES[deployment], saved_at, lambda: self._envoy(deployment)))
        for deployments, changed in plan.code.items():
            files = ", ".join(relative(p) for p in changed)
            lines.append(self._step(files, saved_at, lambda: self._code(deployments, changed)))
        return lines

    @staticmethod
    def _step(what: str, saved_at: float, step: Callable[[], str]) -> str:
        try:
            done = step()
        except (Exit, UnexpectedExit) as exc:
            reason = getattr(exc, "message", None) or str(exc).strip().splitlines()[-1]
            return f"{what} changed: NOT applied, the running pods keep serving: {reason}"
        return f"{what} changed → {done}; served {time.time() - saved_at:.1f} s after the save"

    def _code(self, deployments: tuple[str, ...], changed: list[Path]) -> str:
        files = file_order(changed, self.root)
        if deployments == (TRACE_PROXY,) and any(p.name in TRACE_PROXY_MASTER for p in changed):
            # Its master's own modules changed: the container restarts (the pod and its code volume stay).
            restarts = restart_count(self.kubectl, TRACE_PROXY)
            _, pods = sync(self.kubectl, TRACE_PROXY, files, "TERM")
            deadline = time.monotonic() + RELOAD_TIMEOUT
            while restart_count(self.kubectl, TRACE_PROXY) <= restarts and time.monotonic() < deadline:
                time.sleep(0.2)
            self.kubectl.run("wait", "--for=condition=Ready", "pod", "--selector", f"app={TRACE_PROXY}",
                             f"--timeout={RELOAD_TIMEOUT:.0f}s", capture=True)
            return f"synced into {len(pods)} {TRACE_PROXY} pod(s), its container restarted"
        with ThreadPoolExecutor(max_workers=len(deployments)) as pool:
            synced = dict(zip(deployments, pool.map(
                lambda d: sync(self.kubectl, d, files, "HUP", self.pods.get(d, ()), self.sessions), deployments)))
        self.pods.update({d: pods for d, (_, pods) in synced.items()})
        seconds = {d: s for d, (s, _) in synced.items()}
        pods = " and ".join(f"{len(s)} {d}" for d, s in seconds.items())
        slowest = max(t for s in seconds.values() for t in s)
        return f"synced into {pods} pod(s), gunicorn reloaded in {slowest:.1f} s"

    def _envoy(self, deployment: str) -> str:
        stack.roll_out(self.kubectl, "default", stack.image_for(self.target), shared=not self.target.is_kind,
                       dev=True, deployments=(deployment,), show=False)
        # New pods start with the image's code: give them what was synced since.
        if deployment in PYTHON_PODS:
            sources = [p for p in (self.root / "service").rglob("*.py") if "__pycache__" not in p.parts]
            _, self.pods[deployment] = sync(self.kubectl, deployment, file_order(sources, self.root), "HUP")
        return f"ConfigMap updated, {deployment} rolled (only its pods)"

    def watch(self, emit: Callable[[str], None], stop_event=None) -> None:
        self.prepare()
        try:
            for paths, saved_at in watch_changes(stop_event, extra=[self.root / name for name in DEPENDENCY_FILES]):
                stamp = time.strftime("%H:%M:%S")
                for line in self.apply(paths, saved_at):
                    emit(f"{stamp} {line}")
        finally:
            self.close()
