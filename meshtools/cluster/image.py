"""The service image: a tag derived from its content, docker build, and the last built tag.

The tag is a hash of exactly the files the Dockerfile copies, so a changed source gives a
new tag (and a rollout) while an unchanged tree reuses the image already built.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from meshtools.cluster.state import state_dir
from meshtools.shared.proc import ok, run
from meshtools.shared.topology import PROJECT_ROOT

IMAGE_NAME = "envoy-tracing/service"
DOCKERFILE = "service.Dockerfile"
# Everything the image is built from; .dockerignore admits the same paths. README.md is not:
# the Dockerfile installs with an empty stand-in, so a docs edit keeps the tag.
IMAGE_INPUTS = ("service.Dockerfile", "pyproject.toml", "service", "trace_proxy")
_IGNORED_PARTS = {"__pycache__"}
_IGNORED_SUFFIXES = {".pyc", ".pyo"}
TAG_FILE = "image-tag"


def input_files(root: Path = PROJECT_ROOT) -> list[Path]:
    files = []
    for name in IMAGE_INPUTS:
        path = root / name
        candidates = sorted(path.rglob("*")) if path.is_dir() else [path]
        for file in candidates:
            rel = file.relative_to(root)
            if not file.is_file() or _IGNORED_PARTS & set(rel.parts) or file.suffix in _IGNORED_SUFFIXES:
                continue
            files.append(file)
    return files


def content_tag(root: Path = PROJECT_ROOT) -> str:
    """12 hex digits of a SHA-256 over the inputs' relative paths and bytes."""
    digest = hashlib.sha256()
    for file in input_files(root):
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        digest.update(file.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def image_ref(tag: str) -> str:
    return f"{IMAGE_NAME}:{tag}"


def exists_locally(ref: str) -> bool:
    return ok(["docker", "image", "inspect", "--format", "{{.Id}}", ref])


def build(ref: str, root: Path = PROJECT_ROOT) -> None:
    """docker build with its progress on the terminal."""
    run(["docker", "build", "--file", str(root / DOCKERFILE), "--tag", ref, str(root)])


def ensure_built(root: Path = PROJECT_ROOT, rebuild: bool = False) -> tuple[str, bool]:
    """The image ref for the current sources, building it unless it exists. (ref, built)."""
    ref = image_ref(content_tag(root))
    if not rebuild and exists_locally(ref):
        return ref, False
    build(ref, root)
    return ref, True


def record(ref: str) -> None:
    (state_dir() / TAG_FILE).write_text(ref + "\n")


def last_built() -> str | None:
    path = state_dir() / TAG_FILE
    if not path.exists():
        return None
    return path.read_text().strip() or None
