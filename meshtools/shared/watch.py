"""What `inv dev` watches (the app, the trace proxy, the Envoy configs) and the watching itself.

watchfiles (inotify on Linux, FSEvents on macOS) reports a save within a few tens of
milliseconds; editors that save by renaming a temporary file are seen the same way.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

from meshtools.shared.topology import ENVOY_CONFIG_DIR, ENVOY_CONFIG_FILES, PROJECT_ROOT

SERVICE_DIR = PROJECT_ROOT / "service"
TRACE_PROXY_DIR = PROJECT_ROOT / "trace_proxy"
WATCHED = (SERVICE_DIR, TRACE_PROXY_DIR, ENVOY_CONFIG_DIR)


def under(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def watched(path: Path, root: Path = PROJECT_ROOT) -> bool:
    """Python sources of the app and the trace proxy, and the Envoy configs (of the tree at `root`)."""
    if "__pycache__" in path.parts:
        return False
    if path.suffix == ".py":
        return under(path, in_tree(SERVICE_DIR, root)) or under(path, in_tree(TRACE_PROXY_DIR, root))
    return (path.parent.resolve() == in_tree(ENVOY_CONFIG_DIR, root).resolve()
            and path.name in ENVOY_CONFIG_FILES.values())


def in_tree(folder: Path, root: Path) -> Path:
    """The project's `folder` in a copy of the project at `root`."""
    return root / folder.relative_to(PROJECT_ROOT)


def watch_changes(stop_event=None, extra: list[Path] = ()) -> Iterator[tuple[set[Path], float]]:
    """Each batch of saved files and when the last was saved (its mtime), until Ctrl-C or `stop_event`.

    `extra`: files watched as well (the dependency files, for `inv dev --cluster`)."""
    import watchfiles  # only `inv dev` needs it

    also = {p.resolve() for p in extra}
    # The extra files themselves, not their folder (the project root holds .venv and .git).
    for changes in watchfiles.watch(*WATCHED, *(p for p in extra if p.exists()),
                                    watch_filter=lambda _, path: watched(Path(path)) or Path(path).resolve() in also,
                                    debounce=50, step=20, stop_event=stop_event, raise_interrupt=True):
        paths = {Path(path) for _, path in changes}
        mtimes = [p.stat().st_mtime for p in paths if p.exists()]
        yield paths, max(mtimes, default=time.time())
