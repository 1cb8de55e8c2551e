"""service.requirements.txt, the image's lock: it pins every core dependency inside the range
pyproject.toml allows, and none of the tooling. (That the pins are complete, pip proves in the
build itself: `pip check` after `pip install --no-deps`; tests/cluster/test_image_docker.py.)"""
from __future__ import annotations

import tomllib

import pytest
from invoke.exceptions import Exit
from packaging.requirements import Requirement

from meshtools.cluster import lock
from meshtools.shared.topology import PROJECT_ROOT

PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())


def test_every_core_dependency_is_pinned_inside_its_declared_range():
    pins = lock.read_pins()
    for text in PYPROJECT["project"]["dependencies"]:
        requirement = Requirement(text)
        name = lock.canonical(requirement.name)
        assert name in pins, f"{name} is not pinned in {lock.LOCK_FILE}: run `inv lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{name}=={pins[name]} is outside {requirement.specifier}: run `inv lock`")


def test_no_tooling_package_is_in_the_image_lock():
    tooling = {lock.canonical(Requirement(text).name) for text in PYPROJECT["project"]["optional-dependencies"]["tools"]}
    assert tooling and not tooling & set(lock.read_pins())


def test_the_test_extra_brings_the_tools_so_the_readme_install_has_everything():
    assert "envoy-tracing[tools]" in PYPROJECT["project"]["optional-dependencies"]["test"]


def test_the_lock_reads_back_what_render_writes(tmp_path):
    pins = {"flask": "3.1.3", "charset-normalizer": "3.5.3"}
    (tmp_path / lock.LOCK_FILE).write_text(lock.render(pins))

    assert lock.read_pins(tmp_path) == pins
    assert lock.render(pins).splitlines()[-2:] == ["charset-normalizer==3.5.3", "flask==3.1.3"]


def test_a_line_that_is_not_a_pin_is_refused_with_the_fix(tmp_path):
    (tmp_path / lock.LOCK_FILE).write_text("# pins\nflask>=3\n")

    with pytest.raises(Exit, match=r"service.requirements.txt:2 is not `name==version` .*run `inv lock`"):
        lock.read_pins(tmp_path)
