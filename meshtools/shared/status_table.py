"""`inv status`: one line per process (local) or pod (cluster), the same columns for both.

Columns: name, health, restarts, ports, uptime and the last error line its log holds, cut to
what is left of the width (80 columns when piped).
"""
from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table
from rich.text import Text


@dataclass(frozen=True)
class Row:
    name: str
    health: str  # "up" when it answers its health check / is Ready; otherwise what it is instead
    ok: bool
    restarts: int
    ports: str
    uptime: float | None  # seconds; None when it is not running
    last_error: str = ""  # the last error line of its log, readable, or ""


def uptime(seconds: float | None) -> str:
    """An uptime the way `ps` and `kubectl get pods` put it: 42s, 3m05s, 2h07m, 3d04h."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def table(rows: list[Row], width: int) -> Table:
    """The rows as a rich Table `width` columns wide at most: the last error is cut with an ellipsis."""
    cells = [(row.name, row.health, str(row.restarts), row.ports or "-", uptime(row.uptime)) for row in rows]
    result = Table(box=None, padding=(0, 1, 0, 0), pad_edge=False, header_style="bold", expand=False,
                   width=None)
    # The first columns keep their whole width (rich would squeeze them all); the last error gives way.
    used = 0
    for n, (header, justify) in enumerate((("name", "left"), ("health", "left"), ("rst", "right"),
                                           ("ports", "left"), ("uptime", "right"))):
        needed = max([len(header), *(len(c[n]) for c in cells)])
        result.add_column(header, no_wrap=True, justify=justify, width=needed)
        used += needed + 1
    result.add_column("last error", no_wrap=True, overflow="ellipsis", max_width=max(10, width - used))
    for row, (name, health, restarts, ports, up) in zip(rows, cells):
        result.add_row(name, Text(health, style="green" if row.ok else "bold red"), restarts, ports, up,
                       Text(row.last_error or "-", style="red" if row.last_error else "dim"))
    return result
