"""Docker images built from a Dockerfile of dockerfiles/ and a context assembled for it.

No build here reaches a network: every FROM is an image made on this machine (a debootstrap
root filesystem, or scratch) and every file is copied in. A finished image carries the key of
its inputs as a label, so an unchanged image is not built again.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from invoke.exceptions import Exit

from meshtools.shared.proc import run

DOCKERFILES = Path(__file__).with_name("dockerfiles")
FILES = Path(__file__).with_name("files")
KEY_LABEL = "envoy-tracing.offline.key"


def label(ref: str) -> str | None:
    """The key an image was built with, or None when Docker has no such image (or none was recorded)."""
    result = run(["docker", "image", "inspect", "--format", f'{{{{index .Config.Labels "{KEY_LABEL}"}}}}', ref],
                 capture=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def current(ref: str, key: str) -> bool:
    return label(ref) == key


def build(ref: str, dockerfile: str, files: dict[str, Path], key: str, args: dict[str, str] | None = None,
          also: tuple[str, ...] = ()) -> None:
    """docker build REF from dockerfiles/DOCKERFILE with `files` (context name → source) as its context."""
    with tempfile.TemporaryDirectory(prefix="envoy-tracing-context-") as scratch:
        context = Path(scratch)
        for name, source in files.items():
            target = context / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, symlinks=True)
            else:
                shutil.copy2(source, target)
        argv = ["docker", "build", "--quiet", "--file", str(DOCKERFILES / dockerfile), "--tag", ref,
                "--label", f"{KEY_LABEL}={key}"]
        for name, value in (args or {}).items():
            argv += ["--build-arg", f"{name}={value}"]
        for extra in also:
            argv += ["--tag", extra]
        result = run([*argv, str(context)], capture=True, check=False)
        if result.returncode:
            tail = "\n".join(result.stderr.strip().splitlines()[-10:])
            raise Exit(f"Building {ref} from {dockerfile} failed:\n{tail}")


def import_rootfs(ref: str, tarball: Path, key: str) -> None:
    """`docker import` a root filesystem tarball as REF (its key as a label)."""
    with tarball.open("rb") as source:
        result = subprocess.run(["docker", "import", "--change", f"LABEL {KEY_LABEL}={key}", "-", ref],
                                stdin=source, capture_output=True, text=True)
    if result.returncode:
        raise Exit(f"docker import of {tarball.name} failed: {result.stderr.strip()}")


def save(refs: list[str], archive: Path) -> None:
    run(["docker", "image", "save", "--output", str(archive), *refs])


def load(archive: Path) -> None:
    run(["docker", "image", "load", "--quiet", "--input", str(archive)], capture=True)
