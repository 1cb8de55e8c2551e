"""The service image: a tag derived from its content, docker build, and the last built tag.

The tag is a hash of exactly the files the Dockerfile copies (the locked dependency versions
among them) and of the base image's id, so a changed source, a new lock or a new base gives
a new tag (and a rollout) while an unchanged tree reuses the image already built.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from invoke.exceptions import Exit

from meshtools.cluster.lock import LOCK_FILE
from meshtools.cluster.state import state_dir
from meshtools.shared.proc import ok, run
from meshtools.shared.topology import PROJECT_ROOT

IMAGE_NAME = "envoy-tracing/service"
DOCKERFILE = "service.Dockerfile"
# Everything the image is built from; .dockerignore admits the same paths. README.md is not:
# the Dockerfile installs with an empty stand-in, so a docs edit keeps the tag.
IMAGE_INPUTS = ("service.Dockerfile", "pyproject.toml", LOCK_FILE, "service", "trace_proxy")
BASE_IMAGE_ARG = "BASE_IMAGE"  # the Dockerfile's build argument; its default there is the pinned base
# `docker image save --platform` needs this Docker API version (Docker 28); older daemons refuse the flag.
SAVE_PLATFORM_API = (1, 48)


@dataclass(frozen=True)
class BuildOptions:
    """How `inv build` builds: flags first, then the invoke settings `cluster.base_image`
    and `cluster.build_network`, then the Dockerfile's default base and Docker's network."""

    base_image: str | None = None  # None: the Dockerfile's ARG default
    network: str | None = None  # passed to `docker build --network` (e.g. host)
    rebuild: bool = False  # no build cache, and a fresh pull of a base that came from a registry
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


def content_tag(root: Path = PROJECT_ROOT, base_id: str = "") -> str:
    """12 hex digits of a SHA-256 over the inputs' relative paths and bytes and the base image's id."""
    digest = hashlib.sha256(f"base {base_id}\0".encode())
    for file in input_files(root):
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        digest.update(file.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def default_base_image(root: Path = PROJECT_ROOT) -> str:
    """The pinned base: the default of the Dockerfile's `ARG BASE_IMAGE=...`, defined there once."""
    match = re.search(rf"^ARG {BASE_IMAGE_ARG}=(\S+)\s*$", (root / DOCKERFILE).read_text(), re.MULTILINE)
    if not match:
        raise Exit(f"{DOCKERFILE} has no `ARG {BASE_IMAGE_ARG}=IMAGE` line; put the default base image back.")
    return match[1]


def _inspect(ref: str, template: str) -> str | None:
    result = run(["docker", "image", "inspect", "--format", template, ref], capture=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def from_registry(ref: str) -> bool:
    """Whether the local image came from a registry (it has a repo digest); imported or locally
    built images have none, and a pull could only fail or replace them with something else."""
    return (_inspect(ref, "{{len .RepoDigests}}") or "0") != "0"


def pull(ref: str) -> None:
    if run(["docker", "pull", ref], check=False).returncode != 0:
        raise Exit(
            f"Could not pull the base image {ref}: check that its registry is reachable (and `docker login` "
            "if it needs one), or build from a local image with --base-image IMAGE."
        )


def base_image_id(base: str, fresh: bool = False) -> str:
    """The local id of `base`, pulled when missing, and again when `fresh` and it came from a registry."""
    if fresh and from_registry(base):
        pull(base)
    image_id = _inspect(base, "{{.Id}}")
    if image_id is None:
        pull(base)
        image_id = _inspect(base, "{{.Id}}")
    if not image_id:
        raise Exit(f"Docker has no image {base} even after pulling it; check the name given to --base-image.")
    return image_id


def image_ref(tag: str) -> str:
    return f"{IMAGE_NAME}:{tag}"


def exists_locally(ref: str) -> bool:
    return ok(["docker", "image", "inspect", "--format", "{{.Id}}", ref])


def build(ref: str, root: Path = PROJECT_ROOT, base_image: str | None = None,
          network: str | None = None, no_cache: bool = False) -> None:
    """docker build with its progress on the terminal."""
    argv = ["docker", "build", "--file", str(root / DOCKERFILE), "--tag", ref]
    if base_image:
        argv += ["--build-arg", f"{BASE_IMAGE_ARG}={base_image}"]
    if network:
        argv += ["--network", network]
    if no_cache:
        argv.append("--no-cache")
    run([*argv, str(root)])


def ensure_built(root: Path = PROJECT_ROOT, options: BuildOptions = BuildOptions()) -> tuple[str, bool]:
    """The image ref for the current sources and base, building it unless it exists. (ref, built)."""
    base = options.base_image or default_base_image(root)
    ref = image_ref(content_tag(root, base_image_id(base, fresh=options.rebuild)))
    if not options.rebuild and exists_locally(ref):
        return ref, False
    build(ref, root, base, options.network, no_cache=options.rebuild)
    return ref, True


def api_version() -> tuple[int, int]:
    """The Docker daemon's API version, e.g. (1, 41) for Docker 20.10."""
    text = run(["docker", "version", "--format", "{{.Server.APIVersion}}"], capture=True).stdout.strip()
    major, _, minor = text.partition(".")
    try:
        return int(major), int(minor)
    except ValueError:
        raise Exit(f"Docker reported an API version this cannot read ({text!r}); is the daemon running?")


def save_archive(ref: str, archive: Path) -> None:
    """`docker image save` of `ref` for this platform alone where the daemon can (API 1.48 and
    up), the whole image on older daemons, which refuse `--platform`."""
    argv = ["docker", "image", "save", "--output", str(archive)]
    if api_version() >= SAVE_PLATFORM_API:
        argv += ["--platform", _inspect(ref, "{{.Os}}/{{.Architecture}}") or ""]
    run([*argv, ref])


def record(ref: str) -> None:
    (state_dir() / TAG_FILE).write_text(ref + "\n")


def last_built() -> str | None:
    path = state_dir() / TAG_FILE
    if not path.exists():
        return None
    return path.read_text().strip() or None
