"""`inv build`'s options against fake docker and kind: --no-load, --base-image, --network,
--rebuild, and what the tag follows. tests/cluster/test_image_docker.py does the same for real."""
from __future__ import annotations

import json

import pytest

from meshtools.cluster import image
from tests.support.fakes_harness import Fakes, fakes_for

DEFAULT_BASE = image.default_base_image()


@pytest.fixture
def fakes(tmp_path, monkeypatch, capsys):
    yield from fakes_for(Fakes, tmp_path, monkeypatch, capsys)


def built_tag(fakes: Fakes) -> str:
    (build,) = fakes.argvs("docker", "build")[-1:]
    return build[build.index("--tag") + 1]


def build_arg(argv: list[str]) -> str:
    return argv[argv.index("--build-arg") + 1]


def test_build_without_kind_works_with_no_load_fake(fakes):
    fakes.install("docker")
    code, out, err = fakes.inv("build", "--no-load")

    assert code == 0, err
    ref = built_tag(fakes)
    assert ref in out and image.last_built() == ref
    assert not fakes.calls("kind")


def test_build_without_kind_says_how_to_build_only_fake(fakes):
    fakes.install("docker")
    code, out, err = fakes.inv("build")

    assert code != 0 and "Traceback" not in out + err
    (line,) = err.strip().splitlines()
    assert "kind is not on PATH" in line and "inv build --no-load" in line
    assert not fakes.argvs("docker", "build")


def test_no_load_needs_no_cluster_either_fake(fakes):
    code, _, err = fakes.inv("build", "--no-load")

    assert code == 0, err
    assert not fakes.argvs("kind", "load")


def test_the_default_base_is_pulled_once_and_passed_to_the_build_fake(fakes):
    fakes.inv("build", "--no-load")
    fakes.inv("build", "--no-load")

    assert fakes.argvs("docker", "pull") == [["docker", "pull", DEFAULT_BASE]]
    (build,) = fakes.argvs("docker", "build")  # the second run reused the image
    assert build_arg(build) == f"BASE_IMAGE={DEFAULT_BASE}"
    assert "--no-cache" not in build and "--network" not in build


def test_base_image_and_network_flags_reach_docker_build_and_the_tag_follows_the_base_fake(fakes, monkeypatch):
    fakes.inv("build", "--no-load")
    default_tag = built_tag(fakes)
    monkeypatch.setenv("FAKE_DOCKER_IMPORTED", "standin/python:3.11")
    code, _, err = fakes.inv("build", "--no-load", "--base-image", "standin/python:3.11", "--network", "host")

    assert code == 0, err
    build = fakes.argvs("docker", "build")[-1]
    assert build_arg(build) == "BASE_IMAGE=standin/python:3.11"
    assert build[build.index("--network") + 1] == "host"
    assert built_tag(fakes) != default_tag  # same sources, another base: another image
    assert fakes.argvs("docker", "pull") == [["docker", "pull", DEFAULT_BASE]]  # a local image is not pulled


def test_base_image_and_network_come_from_the_invoke_config_too_fake(fakes, monkeypatch):
    monkeypatch.setenv("FAKE_DOCKER_IMPORTED", "mirror.example/python:3.14")
    config = {"cluster": {"base_image": "mirror.example/python:3.14", "build_network": "host"}}
    code, _, err = fakes.inv("build", "--no-load", configure=config)

    assert code == 0, err
    build = fakes.argvs("docker", "build")[-1]
    assert build_arg(build) == "BASE_IMAGE=mirror.example/python:3.14"
    assert build[build.index("--network") + 1] == "host"
    # A flag wins over the config.
    monkeypatch.setenv("FAKE_DOCKER_IMPORTED", "mirror.example/python:3.14,other/python:3")
    fakes.inv("build", "--no-load", "--base-image", "other/python:3", configure=config)
    assert build_arg(fakes.argvs("docker", "build")[-1]) == "BASE_IMAGE=other/python:3"


def test_rebuild_skips_the_cache_and_pulls_a_registry_base_afresh_fake(fakes):
    fakes.inv("build", "--no-load")
    first = built_tag(fakes)
    code, _, err = fakes.inv("build", "--no-load", "--rebuild")

    assert code == 0, err
    assert len(fakes.argvs("docker", "pull")) == 2
    build = fakes.argvs("docker", "build")[-1]
    assert "--no-cache" in build
    # The fake's second pull brings a new base image id: a new base gives a new tag.
    assert built_tag(fakes) != first


def test_rebuild_never_pulls_a_base_that_did_not_come_from_a_registry_fake(fakes, monkeypatch):
    monkeypatch.setenv("FAKE_DOCKER_IMPORTED", "standin/python:3.11")
    monkeypatch.setenv("FAKE_DOCKER_REGISTRY", "down")
    fakes.inv("build", "--no-load", "--base-image", "standin/python:3.11")
    code, _, err = fakes.inv("build", "--no-load", "--base-image", "standin/python:3.11", "--rebuild")

    assert code == 0, err
    assert not fakes.argvs("docker", "pull")
    builds = fakes.argvs("docker", "build")
    assert len(builds) == 2 and "--no-cache" in builds[1]
    assert built_tag(fakes) == builds[0][builds[0].index("--tag") + 1]  # same sources, same base


def test_a_base_that_cannot_be_pulled_gives_one_line_and_builds_nothing_fake(fakes, monkeypatch):
    monkeypatch.setenv("FAKE_DOCKER_REGISTRY", "down")
    code, out, err = fakes.inv("build", "--no-load")

    assert code != 0 and "Traceback" not in out + err
    last = err.strip().splitlines()[-1]
    assert f"Could not pull the base image {DEFAULT_BASE}" in last and "--base-image" in last
    assert not fakes.argvs("docker", "build")


@pytest.mark.parametrize("flag", ["--base-image", "--network"])
def test_an_empty_build_flag_is_refused_fake(fakes, flag):
    code, out, err = fakes.inv("build", "--no-load", flag, " ")

    assert code != 0 and "Traceback" not in out + err
    assert err.strip() == f"{flag} needs a value, got ' '."


def test_a_loaded_build_still_loads_into_the_cluster_fake(fakes):
    fakes.inv("cluster.up")
    code, _, err = fakes.inv("build")

    assert code == 0, err
    state = json.loads((fakes.state / "state.json").read_text())
    assert state["clusters"]["envoy-tracing"]["images"] == [built_tag(fakes)]
