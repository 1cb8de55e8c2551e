"""Shared fixtures: a real local mesh on free ports, stopped whatever happens."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import pytest

from meshtools.local.mesh import LocalMesh
from meshtools.shared.net import free_layout
from meshtools.shared.topology import DEFAULT_REPLICAS
from tests.support import docker_engine as docker_support
from tests.support import process_guard
# No process a test starts outlives the run; SIGINT's default restored for children; SIGTERM as Ctrl-C.
from tests.support.speed import scaled
from tests.support.process_guard import no_process_left_behind, pytest_configure, pytest_unconfigure  # noqa: F401
from tests.support.cluster_stack import cluster_stack_session

# A shorter slow stage keeps the suite fast; its bounds are the service's configuration.
FAST_SLOW_STAGE = {"SLOW_STAGE_MIN_SECONDS": "0.05", "SLOW_STAGE_JITTER_SECONDS": "0.1"}


@contextlib.contextmanager
def running_mesh(state_dir: Path, replicas: int = DEFAULT_REPLICAS, tracer: str | None = None) -> Iterator[LocalMesh]:
    """A real mesh on free ports with the short slow stage, up until the block ends."""
    mesh = LocalMesh(layout=free_layout(replicas=replicas), state_dir=state_dir, service_env=FAST_SLOW_STAGE,
                     tracer=tracer)
    try:
        mesh.up(timeout=scaled(90))
        yield mesh
    finally:
        mesh.down()


@pytest.fixture(scope="session")
def local_mesh(tmp_path_factory):
    """One real mesh for the session: real Envoy, gunicorn services, the trace proxy."""
    with running_mesh(tmp_path_factory.mktemp("mesh")) as mesh:
        yield mesh


def pytest_addoption(parser):
    parser.addoption(
        "--screenshots", metavar="DIR",
        help="web UI browser tests: write the README's screenshots to DIR (e.g. docs)",
    )
    parser.addoption(
        "--keep-cluster", action="store_true",
        help="cluster e2e tests (-m cluster): leave the kind cluster running afterwards, so the next run reuses it",
    )


@pytest.fixture(scope="session")
def cluster_stack(request, tmp_path_factory):
    """The whole stack on a real kind cluster (`inv up`), for tests marked `cluster`; skipped unless opted in."""
    yield from cluster_stack_session(request.config, tmp_path_factory.mktemp("cluster"))


# A real Docker engine (tests marked `docker`): run whenever a daemon answers, skipped with the
# reason otherwise. What they ran on goes into pytest's closing summary.
_DOCKER_REPORT = pytest.StashKey[list]()


def _docker_report(config) -> list:
    return config.stash.setdefault(_DOCKER_REPORT, [])


@pytest.fixture(scope="session")
def docker_engine(request):
    """The Docker engine on DOCKER_HOST (or Docker's default socket), with a docker SDK client."""
    try:
        engine = docker_support.connect()
    except docker_support.EngineUnavailable as exc:
        pytest.skip(f"docker tests: {exc}")
    _docker_report(request.config).append(
        f"engine: Docker {engine.version} (API {engine.api_version}) on {engine.host or 'the default socket'}")
    yield engine
    engine.client.close()


@pytest.fixture(scope="session")
def docker_base_image(docker_engine, request):
    """A base image for service.Dockerfile: the pinned Python image if Docker has or can pull it,
    else the cached debootstrap stand-in (tests/support/standin_base.sh)."""
    try:
        base = docker_support.base_image(docker_engine)
    except docker_support.EngineUnavailable as exc:
        pytest.skip(f"docker tests: {exc}")
    _docker_report(request.config).append(f"base image: {base.ref}, {base.how}")
    return base


@pytest.fixture(scope="session")
def service_image(docker_engine, docker_base_image, tmp_path_factory, request):
    """service.Dockerfile built once per session by `inv build --no-load --base-image BASE`."""
    built = docker_support.build_service_image(docker_engine, docker_base_image.ref, tmp_path_factory.mktemp("build"))
    _docker_report(request.config).append(f"service image: {built.ref} ({built.image_id[:19]}), "
                                          f"`inv build` took {built.seconds:.1f} s")
    return built


def pytest_terminal_summary(terminalreporter, config):
    process_guard.pytest_terminal_summary(terminalreporter, config)
    lines = config.stash.get(_DOCKER_REPORT, [])
    if lines:
        terminalreporter.section("docker tests ran on")
        for line in lines:
            terminalreporter.write_line(line)
