"""Shared fixtures: a real local mesh on free ports, stopped whatever happens."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import pytest

from meshtools.local.mesh import LocalMesh
from meshtools.shared.net import free_layout
from meshtools.shared.topology import DEFAULT_REPLICAS
from tests.support.cluster_stack import cluster_stack_session

# A shorter slow stage keeps the suite fast; its bounds are the service's configuration.
FAST_SLOW_STAGE = {"SLOW_STAGE_MIN_SECONDS": "0.05", "SLOW_STAGE_JITTER_SECONDS": "0.1"}


@contextlib.contextmanager
def running_mesh(state_dir: Path, replicas: int = DEFAULT_REPLICAS) -> Iterator[LocalMesh]:
    """A real mesh on free ports with the short slow stage, up until the block ends."""
    mesh = LocalMesh(layout=free_layout(replicas=replicas), state_dir=state_dir, service_env=FAST_SLOW_STAGE)
    try:
        mesh.up(timeout=90)
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
