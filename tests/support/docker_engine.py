"""A real Docker engine for the tests marked `docker`: a client, a base image, the service image.

Reusable by any test module: tests/conftest.py exposes the session fixtures `docker_engine`
(skips the test, with the reason, when no daemon answers), `docker_base_image` (the pinned
Python base when Docker has it or can pull it, else a debootstrap stand-in built by
standin_base.sh and cached in ~/.cache/envoy-tracing) and `service_image` (service.Dockerfile
built once per session with `inv build --no-load`).

The daemon is the one DOCKER_HOST names (`.ci/run` starts a private one and exports it), else
Docker's default socket. Containers and builds use the host network and listen on 127.0.0.1.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from meshtools.cluster import image
from meshtools.shared.topology import PROJECT_ROOT
from tests.support.inv_process import run_inv

STANDIN_SCRIPT = Path(__file__).with_name("standin_base.sh")
# Set to an image reference to build the docker tests' image from it, whatever Docker has.
BASE_IMAGE_ENV = "ENVOY_TRACING_TEST_BASE_IMAGE"
PULL_TIMEOUT = 120
STANDIN_TIMEOUT = 600  # a cold stand-in downloads ~40 MB of debs and debootstraps (about a minute here)
BUILD_TIMEOUT = 600


class EngineUnavailable(Exception):
    """No Docker engine (or no base image) for the docker tests; the message is the skip reason."""


@dataclass
class DockerEngine:
    host: str  # what DOCKER_HOST says for it ("" for Docker's default)
    client: docker.DockerClient
    version: str
    api_version: str

    @property
    def env(self) -> dict[str, str]:
        """This process's environment, pointed at this engine (for `docker` and `inv` subprocesses)."""
        env = dict(os.environ)
        if self.host:
            env["DOCKER_HOST"] = self.host
        return env

    def cli(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        """The docker CLI against this engine, output captured."""
        result = subprocess.run(["docker", *args], env=self.env, capture_output=True, text=True,
                                stdin=subprocess.DEVNULL, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def image_id(self, ref: str) -> str | None:
        try:
            return self.client.images.get(ref).id
        except docker.errors.ImageNotFound:
            return None


def connect() -> DockerEngine:
    """The engine on DOCKER_HOST (or Docker's default socket); EngineUnavailable saying why not."""
    if shutil.which("docker") is None:
        raise EngineUnavailable("the docker CLI is not on PATH (apt-get install docker.io)")
    host = os.environ.get("DOCKER_HOST", "")
    try:
        # version="auto": the daemon's own API version, so Docker 20.10 (API 1.41) works too.
        client = docker.DockerClient(base_url=host or None, version="auto", timeout=30)
        info = client.version()
    except docker.errors.DockerException as exc:
        where = host or "Docker's default socket"
        raise EngineUnavailable(f"no Docker daemon answers on {where} ({exc.__class__.__name__}); "
                                "`.ci/run` starts one as root, or start Docker") from None
    return DockerEngine(host, client, info.get("Version", "?"), info.get("ApiVersion", "?"))


@dataclass(frozen=True)
class BaseImage:
    ref: str
    how: str  # for the test report: where it came from


def base_image(engine: DockerEngine, cache_dir: Path | None = None) -> BaseImage:
    """The base to build the service image from: BASE_IMAGE_ENV, else the Dockerfile's pinned base
    (present or pulled), else the debootstrap stand-in (root and debootstrap needed)."""
    chosen = os.environ.get(BASE_IMAGE_ENV, "").strip()
    if chosen:
        if engine.image_id(chosen) is None:
            raise EngineUnavailable(f"{BASE_IMAGE_ENV}={chosen} names no image that Docker has")
        return BaseImage(chosen, f"{BASE_IMAGE_ENV}")
    pinned = image.default_base_image()
    if engine.image_id(pinned):
        return BaseImage(pinned, "the pinned base, already in Docker")
    pull = engine.cli("pull", pinned, timeout=PULL_TIMEOUT, check=False)
    if pull.returncode == 0:
        return BaseImage(pinned, "the pinned base, pulled")
    why = (pull.stderr.strip().splitlines() or ["no reason given"])[-1]
    return standin(engine, cache_dir, f"{pinned} could not be pulled: {why}")


def standin(engine: DockerEngine, cache_dir: Path | None, why: str) -> BaseImage:
    """The debootstrap stand-in for the Python base, built (or found current) by standin_base.sh."""
    if os.geteuid() != 0 or shutil.which("debootstrap") is None:
        raise EngineUnavailable(f"{why}; a stand-in base needs root and debootstrap (apt-get install debootstrap)")
    started = time.monotonic()
    argv = ["bash", str(STANDIN_SCRIPT), *([str(cache_dir)] if cache_dir else [])]
    result = subprocess.run(argv, env=engine.env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                            timeout=STANDIN_TIMEOUT)
    if result.returncode != 0:
        raise EngineUnavailable(f"{why}; the stand-in base failed: {result.stderr.strip()[-500:]}")
    ref = result.stdout.strip().splitlines()[-1]
    return BaseImage(ref, f"debootstrap stand-in ({why}), ready in {time.monotonic() - started:.1f} s")


@dataclass(frozen=True)
class BuiltImage:
    ref: str
    image_id: str
    output: str  # what `inv build` printed, both streams
    seconds: float


def build_service_image(engine: DockerEngine, base: str, state_dir: Path, *extra: str) -> BuiltImage:
    """`inv build --no-load --base-image BASE --network host [extra]` from the project root."""
    env = {"ENVOY_TRACING_STATE_DIR": str(state_dir)}
    started = time.monotonic()
    result = run_inv("build", "--no-load", "--base-image", base, "--network", "host", *extra,
                     environ=engine.env, env=env, timeout=BUILD_TIMEOUT, cwd=PROJECT_ROOT)
    seconds = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    ref = (state_dir / image.TAG_FILE).read_text().strip()
    image_id = engine.image_id(ref)
    assert image_id, f"inv build reported {ref}, which Docker does not have"
    return BuiltImage(ref, image_id, output, seconds)
