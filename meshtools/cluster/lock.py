"""The image's locked dependencies: service.requirements.txt, pinned from pyproject.toml.

The image installs exactly these versions (`pip install --no-deps`, then `pip check`), and
the content tag hashes this file, so a new release of a dependency reaches the image only
through a new lock, which gives a new tag. `inv lock` resolves pyproject.toml's core
dependencies (not the tooling extras) against the package index and rewrites the file.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from invoke.exceptions import Exit

from meshtools.shared.topology import PROJECT_ROOT

LOCK_FILE = "service.requirements.txt"
HEADER = """\
# The image's dependencies, pinned: `inv lock` writes this file from pyproject.toml's
# [project] dependencies (the tooling extras never reach the image). service.Dockerfile
# installs exactly these; the image's content tag hashes this file.
"""
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)\s*(?:#.*)?$")


def core_requirements(root: Path = PROJECT_ROOT) -> list[str]:
    return tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(root: Path = PROJECT_ROOT) -> dict[str, str]:
    """{canonical name: version} from the lock file; Exit on a line that is not `name==version`."""
    pins = {}
    for number, line in enumerate((root / LOCK_FILE).read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _PIN.match(line)
        if not match:
            raise Exit(f"{LOCK_FILE}:{number} is not `name==version` ({line!r}): run `inv lock` to rewrite it.")
        pins[canonical(match[1])] = match[2]
    return pins


def resolve(requirements: list[str]) -> dict[str, str]:
    """What pip would install for `requirements` in an empty environment: {name: version}."""
    with tempfile.TemporaryDirectory(prefix="envoy-tracing-lock-") as tmp:
        report = Path(tmp) / "report.json"
        argv = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                "--disable-pip-version-check", "--report", str(report), *requirements]
        result = subprocess.run(argv, capture_output=True, text=True)
        if result.returncode != 0:
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            raise Exit(f"pip could not resolve the image's dependencies: {lines[-1] if lines else 'no reason given'}.")
        installs = json.loads(report.read_text())["install"]
    return {canonical(item["metadata"]["name"]): item["metadata"]["version"] for item in installs}


def render(pins: dict[str, str]) -> str:
    return HEADER + "".join(f"{name}=={pins[name]}\n" for name in sorted(pins))


def write(root: Path = PROJECT_ROOT) -> dict[str, str]:
    """Resolve pyproject.toml's core dependencies and rewrite the lock; the pins written."""
    pins = resolve(core_requirements(root))
    (root / LOCK_FILE).write_text(render(pins))
    return pins
