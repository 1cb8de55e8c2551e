"""Where the offline builds keep what they made: the user's cache folder, never the repository.

$XDG_CACHE_HOME/envoy-tracing/offline (~/.cache/envoy-tracing/offline by default), or
ENVOY_TRACING_CACHE_DIR. Each product is stored under a key made from its inputs, so a
changed input builds anew and an unchanged one is reused.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

CACHE_DIR_ENV = "ENVOY_TRACING_CACHE_DIR"


def cache_dir() -> Path:
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        root = Path(explicit)
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "envoy-tracing" / "offline"
    root.mkdir(parents=True, exist_ok=True)
    return root


def folder(*parts: str) -> Path:
    path = cache_dir().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def key(*inputs: str | bytes | Path) -> str:
    """12 hex digits over the inputs: text, bytes, or files (their bytes) and folders (every file)."""
    digest = hashlib.sha256()
    for item in inputs:
        if isinstance(item, Path):
            files = sorted(p for p in item.rglob("*") if p.is_file()) if item.is_dir() else [item]
            for file in files:
                digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
        else:
            digest.update((item.encode() if isinstance(item, str) else item) + b"\0")
    return digest.hexdigest()[:12]
