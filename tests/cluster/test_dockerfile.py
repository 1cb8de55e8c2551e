"""service.Dockerfile and .dockerignore: lint-clean, pinned, non-root, cache-friendly, and
built from exactly the files the content tag hashes (meshtools.cluster.image.IMAGE_INPUTS).

These are the properties that can be checked without Docker; tests/cluster/test_image_docker.py
builds and runs the image on a real engine.
"""
from __future__ import annotations

import re
import shlex
import subprocess

import yaml

from meshtools.cluster import image, lock
from meshtools.cluster.lock import LOCK_FILE
from meshtools.shared.topology import MANIFESTS_DIR, PROJECT_ROOT

DOCKERFILE = PROJECT_ROOT / image.DOCKERFILE
MANIFESTS = MANIFESTS_DIR / "base"


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


def stages() -> list[list[tuple[str, str]]]:
    """The instructions of each build stage (from its FROM on)."""
    result = []
    for word, rest in instructions():
        if word == "FROM":
            result.append([])
        if result:
            result[-1].append((word, rest))
    return result


def test_every_stage_builds_from_the_base_image_argument_pinned_to_an_official_python_patch_release():
    steps = instructions()
    assert steps[0][0] == "ARG"  # before the first FROM, so every FROM can use it
    name, _, default = steps[0][1].partition("=")
    assert name == image.BASE_IMAGE_ARG and default == image.default_base_image()
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim(-[a-z]+)?", default), default
    froms = [rest.split()[0] for word, rest in steps if word == "FROM"]
    assert froms and set(froms) == {"${%s}" % image.BASE_IMAGE_ARG}


def test_runs_gunicorn_as_the_manifests_numeric_non_root_user_and_group():
    final = stages()[-1]
    (user,) = [rest for word, rest in final if word == "USER"]
    uid, gid = (int(part) for part in user.split(":"))
    assert uid != 0 and gid != 0
    for manifest in ("service1.yaml", "service2.yaml", "trace-proxy.yaml"):
        deployment = next(doc for doc in yaml.safe_load_all((MANIFESTS / manifest).read_text())
                          if doc and doc["kind"] == "Deployment")
        context = deployment["spec"]["template"]["spec"]["securityContext"]
        assert (context["runAsUser"], context["runAsGroup"]) == (uid, gid), manifest
    (useradd,) = [rest for word, rest in final if word == "RUN" and "useradd" in rest]
    assert f"--gid {gid}" in useradd and f"--uid {uid}" in useradd and "--system" not in useradd
    (cmd,) = [rest for word, rest in final if word == "CMD"]
    assert cmd.startswith('["gunicorn", "-c", "python:service.gunicorn_conf"')


def test_locked_dependencies_install_in_a_layer_before_the_project_is_added():
    final = stages()[-1]
    copies = [(i, shlex.split(rest)) for i, (word, rest) in enumerate(final) if word == "COPY"]
    (lock_step, lock_copy), (project_step, project_copy) = copies
    assert lock_copy[0] == LOCK_FILE and project_copy[0] == "--from=project"
    (pip_step,) = [i for i, (word, rest) in enumerate(final) if word == "RUN" and "pip " in rest]
    assert lock_step < pip_step < project_step
    install = final[pip_step][1]
    # Exactly the pins (no resolver picking newer releases), and pip check proves them complete.
    assert "--no-deps -r" in install and "pip --python /opt/venv/bin/python check" in install


def test_the_image_is_built_from_exactly_the_hashed_inputs():
    copied = set()
    for word, rest in instructions():
        if word == "COPY" and not rest.startswith("--from"):
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


def test_the_packages_in_the_image_import_only_themselves_and_the_locked_dependencies():
    """The image holds service/ and trace_proxy/ alone and the pins of the lock: an import of the
    dev tooling (meshtools, yaml, rich…) would make a pod crash at start."""
    import sys
    from importlib.metadata import packages_distributions

    in_image = {name for name in image.IMAGE_INPUTS if (PROJECT_ROOT / name).is_dir()}
    locked = set(lock.read_pins())
    provided_by = packages_distributions()
    for package in in_image:
        for name in _top_level_imports(package):
            if name in sys.stdlib_module_names or name in in_image or name == "__future__":
                continue
            distributions = {lock.canonical(d) for d in provided_by.get(name, [])}
            assert distributions & locked, f"{package}/ imports {name}, which the image does not install"
