"""docs: the documentation site under docs/ (MkDocs with the Material theme), served or built.

`inv docs` serves it at http://127.0.0.1:8001/ and rebuilds a page when its file is saved;
`inv docs --build` writes the static site to site/ with `mkdocs build --strict`, which fails
on a broken link, as CI does (tests/project/test_docs.py).
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys

from invoke import Exit, task

from meshtools.shared.topology import DOCS_PORT, LOOPBACK, PROJECT_ROOT
from meshtools.tasks import options
from meshtools.tasks.cli import MeshTask

SITE_DIR = PROJECT_ROOT / "site"


def mkdocs_command(build: bool, port: int = DOCS_PORT) -> list[str]:
    if build:
        return [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(SITE_DIR)]
    return [sys.executable, "-m", "mkdocs", "serve", "--dev-addr", f"{LOOPBACK}:{port}"]


@task(klass=MeshTask, metavars={"port": "PORT"}, help={
    "port": f"the port to serve the site on, on {LOOPBACK} (default {DOCS_PORT})",
    "build": "write the site to site/ (mkdocs build --strict) instead of serving it",
})
def docs(c, port=None, build=False):
    """Serve the documentation (docs/) locally; --build writes the site to site/.

    http://127.0.0.1:8001/ by default (--port moves it); Ctrl-C stops.
    """
    port = options.port(port, "--port") or DOCS_PORT
    if importlib.util.find_spec("mkdocs") is None:
        raise Exit("MkDocs is not installed: `pip install -e '.[docs]'` (the test extra has it too).")
    if not build:
        print(f"The documentation at http://{LOOPBACK}:{port}/ (Ctrl-C stops).", flush=True)
    try:
        result = subprocess.run(mkdocs_command(build, port), cwd=PROJECT_ROOT)
    except KeyboardInterrupt:
        return
    if result.returncode:
        raise Exit(code=result.returncode)
    if build:
        print(f"The site is in {SITE_DIR.relative_to(PROJECT_ROOT)}/.")
