"""A step line per build step with its elapsed time: a cold build takes many minutes.

On a terminal the running step shows a spinner and a clock; piped, each step prints one line
when it starts and one when it ends, so a CI log shows where the time went.
"""
from __future__ import annotations

import time
from contextlib import contextmanager

from rich.console import Console


def minutes(seconds: float) -> str:
    """'8.2s', '3m05s'."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


class Steps:
    def __init__(self, total: int, console: Console | None = None):
        self.total = total
        self.done = 0
        self.console = console or Console(highlight=False)
        self.started = time.monotonic()

    @contextmanager
    def step(self, title: str):
        """Run one step; the body may call `skip(reason)` on the yielded object when cached."""
        self.done += 1
        prefix = f"[{self.done}/{self.total}]"
        outcome = _Outcome()
        began = time.monotonic()
        if self.console.is_terminal:
            with self.console.status(f"{prefix} {title}…") as status:
                outcome.on_note = lambda note: status.update(f"{prefix} {title}: {note}…")
                yield outcome
        else:
            self.console.print(f"{prefix} {title}…")
            outcome.on_note = lambda note: self.console.print(f"      {note}")
            yield outcome
        spent = minutes(time.monotonic() - began)
        mark = "[green]✓[/green]"
        detail = f"cached: {outcome.cached}" if outcome.cached else spent
        self.console.print(f"{mark} {prefix} {title} ({detail})")

    def finish(self, what: str) -> None:
        self.console.print(f"{what} in {minutes(time.monotonic() - self.started)}.")


class _Outcome:
    def __init__(self):
        self.cached = ""
        self.on_note = lambda note: None

    def skip(self, reason: str) -> None:
        self.cached = reason

    def note(self, text: str) -> None:
        self.on_note(text)
