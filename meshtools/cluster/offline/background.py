"""Jobs that need no compiler, run one after another in a background thread.

On a cold machine `inv cluster.images` spends most of its time compiling Kubernetes, which
keeps both cores busy, while the debootstraps and the Zipkin download mostly wait on the
network and the disk. Started first, they are done (or nearly) by the time the build needs
them. The thread is a daemon: a Ctrl-C ends the task at once (the terminal's SIGINT reaches
debootstrap too), and a job's error is raised where its result is asked for.
"""
from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any, Callable


class Background:
    def __init__(self, jobs: dict[str, Callable[[], Any]]):
        self._futures = {name: Future() for name in jobs}
        self._thread = threading.Thread(target=self._run, args=(jobs,), name="offline-background", daemon=True)
        self._thread.start()

    def _run(self, jobs: dict[str, Callable[[], Any]]) -> None:
        for name, job in jobs.items():
            future = self._futures[name]
            try:
                future.set_result(job())
            except BaseException as exc:  # handed to whoever waits for it
                future.set_exception(exc)

    def done(self, name: str) -> bool:
        return self._futures[name].done()

    def result(self, name: str) -> Any:
        """The job's result, waiting for it; its exception if it failed."""
        return self._futures[name].result()
