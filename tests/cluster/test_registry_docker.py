"""`inv build --registry` against a real Docker engine and a real registry on loopback.

The registry is Debian's docker-registry (distribution 2.8) serving 127.0.0.1:FREE_PORT
(tests/support/registry.py); the image is the session's service image (tests/conftest.py),
so `inv build` finds it up to date and only tags and pushes. Skipped with the reason where no
Docker daemon answers or the registry binary is missing.
"""
from __future__ import annotations

import json

import pytest

from meshtools.cluster import image, registry
from meshtools.shared.topology import PROJECT_ROOT
from tests.support import registry as registry_support
from tests.support.inv_process import run_inv

pytestmark = pytest.mark.docker

REPOSITORY = image.IMAGE_NAME  # envoy-tracing/service


@pytest.fixture(scope="module")
def loopback_registry(tmp_path_factory):
    executable = registry_support.binary()
    if not executable:
        pytest.skip("registry push test: no docker-registry binary (.ci/run unpacks Debian's package into "
                    f".cache/docker-registry; or set {registry_support.REGISTRY_BIN_ENV})")
    yield from registry_support.serve(tmp_path_factory.mktemp("registry"), executable)


def inv_build_push(engine, base: str, host: str, state) -> str:
    result = run_inv("build", "--registry", host, "--base-image", base, "--network", "host",
                     environ=engine.env, env={"ENVOY_TRACING_STATE_DIR": str(state)}, timeout=600, cwd=PROJECT_ROOT)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    return output


def test_inv_build_pushes_to_the_registry_and_an_unchanged_tree_sends_nothing_new(
        docker_engine, docker_base_image, service_image, loopback_registry, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    tag = service_image.ref.rsplit(":", 1)[1]
    pushed_ref = f"{loopback_registry.host}/{REPOSITORY}:{tag}"
    try:
        first = inv_build_push(docker_engine, docker_base_image.ref, loopback_registry.host, state)

        # The registry's own API lists the tag, and serves the manifest the push reported.
        assert loopback_registry.tags(REPOSITORY) == [tag]
        record = json.loads((state / registry.PUSHED_FILE).read_text())[loopback_registry.host]
        assert record["ref"] == pushed_ref
        assert loopback_registry.manifest_digest(REPOSITORY, tag) == record["digest"]
        assert "up to date" in first  # the session's image: tagged and pushed, not rebuilt
        assert f"Pushed {pushed_ref} ({record['new_layers']} new layers, " in first and record["new_layers"] > 0
        blobs = loopback_registry.blobs()
        assert len(blobs) == record["new_layers"] + 2  # every layer, the image config and the manifest

        second = inv_build_push(docker_engine, docker_base_image.ref, loopback_registry.host, state)

        assert "(0 new layers, " in second
        assert loopback_registry.blobs() == blobs  # nothing new reached the registry
        assert loopback_registry.tags(REPOSITORY) == [tag]
        again = json.loads((state / registry.PUSHED_FILE).read_text())[loopback_registry.host]
        assert again["digest"] == record["digest"]
    finally:
        try:
            docker_engine.client.images.remove(pushed_ref)  # the tag only; the session's image stays
        except Exception:  # noqa: BLE001 - nothing to clean when the push never tagged it
            pass
