"""`inv build --registry` against a real Docker engine and a real registry on loopback.

The registry is Debian's docker-registry (distribution 2.8) serving 127.0.0.1:FREE_PORT to one
user (tests/support/registry.py); the image is the session's service image (tests/conftest.py),
so `inv build` finds it up to date and only tags and pushes. The credentials live only in a
Docker config file (DOCKER_CONFIG), as after `docker login`. Skipped with the reason where no
Docker daemon answers or the registry binary is missing.
"""
from __future__ import annotations

import base64
import json
import secrets

import pytest

from meshtools.cluster import image, registry
from meshtools.shared.topology import PROJECT_ROOT
from tests.support import registry as registry_support
from tests.support.inv_process import run_inv

pytestmark = pytest.mark.docker

REPOSITORY = image.IMAGE_NAME  # envoy-tracing/service
USER = "tracer"
PASSWORD = "pw-" + secrets.token_hex(12)  # a sentinel: it must never show up in the output


@pytest.fixture(scope="module")
def loopback_registry(tmp_path_factory):
    executable = registry_support.binary()
    if not executable:
        pytest.skip("registry push test: no docker-registry binary (.ci/run unpacks Debian's package into "
                    f".cache/docker-registry; or set {registry_support.REGISTRY_BIN_ENV})")
    yield from registry_support.serve(tmp_path_factory.mktemp("registry"), executable, USER, PASSWORD)


def docker_config(directory, host: str | None = None):
    """A Docker config folder as `docker login HOST` leaves it (no login without `host`)."""
    directory.mkdir()
    auths = {host: {"auth": base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}} if host else {}
    (directory / "config.json").write_text(json.dumps({"auths": auths}))
    return directory


def inv_build_push(engine, base: str, host: str, state, config, expect_ok: bool = True) -> str:
    result = run_inv("build", "--registry", host, "--base-image", base, "--network", "host",
                     environ=engine.env, env={"ENVOY_TRACING_STATE_DIR": str(state), "DOCKER_CONFIG": str(config)},
                     timeout=600, cwd=PROJECT_ROOT)
    output = result.stdout + result.stderr
    assert (result.returncode == 0) == expect_ok, output[-3000:]
    assert PASSWORD not in output
    return output


def test_inv_build_pushes_with_the_docker_login_and_an_unchanged_tree_sends_nothing_new(
        docker_engine, docker_base_image, service_image, loopback_registry, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    tag = service_image.ref.rsplit(":", 1)[1]
    pushed_ref = f"{loopback_registry.host}/{REPOSITORY}:{tag}"
    logged_in = docker_config(tmp_path / "logged-in", loopback_registry.host)
    try:
        # Without a login the registry refuses the push: one sentence, no traceback, nothing stored.
        refused = inv_build_push(docker_engine, docker_base_image.ref, loopback_registry.host, state,
                                 docker_config(tmp_path / "no-login"), expect_ok=False)
        assert "Traceback" not in refused and "docker login" in refused.strip().splitlines()[-1]
        assert loopback_registry.tags(REPOSITORY) == [] and not loopback_registry.blobs()

        first = inv_build_push(docker_engine, docker_base_image.ref, loopback_registry.host, state, logged_in)

        # The registry's own API lists the tag, and serves the manifest the push reported.
        assert loopback_registry.tags(REPOSITORY) == [tag]
        record = json.loads((state / registry.PUSHED_FILE).read_text())[loopback_registry.host]
        assert record["ref"] == pushed_ref
        assert loopback_registry.manifest_digest(REPOSITORY, tag) == record["digest"]
        assert "up to date" in first  # the session's image: tagged and pushed, not rebuilt
        assert f"Pushed {pushed_ref} ({record['new_layers']} new layers, " in first and record["new_layers"] > 0
        blobs = loopback_registry.blobs()
        assert len(blobs) == record["new_layers"] + 2  # every layer, the image config and the manifest

        second = inv_build_push(docker_engine, docker_base_image.ref, loopback_registry.host, state, logged_in)

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
