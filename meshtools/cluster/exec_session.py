"""A `kubectl exec -i` into one pod, kept open between live updates.

Each live update used to start a kubectl per pod (0.3 s each on two cores, more when four
start at once) before the pod even read the change. A session runs the in-pod script
(live.IN_POD) in its `serve` mode once: every later change is one line in and one line out.
A session ends with its pod (a rollout, a crash); the caller then does a one-off exec and
opens a new session for next time.
"""
from __future__ import annotations

import select
import subprocess

from meshtools.cluster.kubectl import Kubectl


class SessionClosed(Exception):
    """The session's kubectl (or the pod) is gone; nothing was applied through it."""


class PodSession:
    def __init__(self, kubectl: Kubectl, pod: str, container: str, script: str):
        self.pod = pod
        self.process = subprocess.Popen(
            kubectl.argv("exec", "-i", pod, "-c", container, "--", "python", "-u", "-c", script, "serve"),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            start_new_session=True,  # a Ctrl-C in the terminal is the watcher's to handle
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def apply(self, order: str, timeout: float) -> float:
        """Send one order (a JSON line); the seconds the pod reports. Raises SessionClosed when the
        session is gone, RuntimeError with the pod's reason when the order failed there."""
        if not self.alive():
            raise SessionClosed(self.pod)
        try:
            self.process.stdin.write(order + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            raise SessionClosed(self.pod) from None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if ready else ""
        if not ready:
            self.close()
            raise RuntimeError(f"{self.pod}: no answer within {timeout:g} s")
        if not line:
            raise SessionClosed(self.pod)
        status, _, value = line.strip().partition(" ")
        if status != "ok":
            raise RuntimeError(f"{self.pod}: {value or line.strip()}")
        return float(value)

    def close(self) -> None:
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass
