"""Recorded pids: whether one still belongs to the process we started, not a reused one."""
from __future__ import annotations

from pathlib import Path


def cmdline_contains(pid: int, marker: str) -> bool:
    """Whether /proc says `pid` runs a command line holding `marker`.

    A zombie's cmdline is empty, so it never matches. Without procfs (macOS) there is no way
    to tell, so the record is trusted.
    """
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists()
    except OSError:
        return False
    return marker.encode() in cmdline
