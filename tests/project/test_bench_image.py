"""bench/image.py's one piece of logic that needs no Docker: putting both trees on one base."""
from __future__ import annotations

import importlib.util

from meshtools.shared.topology import PROJECT_ROOT

spec = importlib.util.spec_from_file_location("bench_image", PROJECT_ROOT / "bench" / "image.py")
bench_image = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_image)


def test_a_tree_with_the_base_argument_gets_it_as_a_build_argument(tmp_path):
    dockerfile = tmp_path / "service.Dockerfile"
    dockerfile.write_text("ARG BASE_IMAGE=python:3.14.6-slim-trixie\nFROM ${BASE_IMAGE}\n")

    assert bench_image.point_at_base(tmp_path, "standin:1") == ["--build-arg", "BASE_IMAGE=standin:1"]
    assert "python:3.14.6" in dockerfile.read_text()


def test_an_older_tree_with_a_fixed_base_has_its_first_from_rewritten(tmp_path):
    dockerfile = tmp_path / "service.Dockerfile"
    dockerfile.write_text("# one image\nFROM python:3.14.6-slim-trixie\nRUN true\nFROM python:3 AS other\n")

    assert bench_image.point_at_base(tmp_path, "standin:1") == []
    assert dockerfile.read_text() == "# one image\nFROM standin:1\nRUN true\nFROM python:3 AS other\n"
