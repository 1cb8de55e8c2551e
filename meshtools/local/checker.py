"""A warm interpreter that tries a change in a fork: `inv dev`'s check in tens of milliseconds.

A fresh `python -c "import service; service.create_app()"` spends half a second starting Python
and importing Flask before it gets to the changed code. This process imports the libraries the
app and the trace proxy use once (never the project's own packages), then for each request it
reads forks a child that runs the check from the source root, with those libraries already
loaded and the project's code loaded anew.

Protocol (`python -m meshtools.local.checker`): one JSON line in, {"code": PYTHON, "root": DIR};
one JSON line out, {"exit": CODE, "stderr": TEXT}. It ends when its stdin closes.
"""
from __future__ import annotations

import importlib
import json
import os
import sys
import traceback

# Third-party only: a project module imported here would hide its change from every check.
PRELOAD = ("flask", "requests", "werkzeug", "jinja2", "markupsafe", "gunicorn.app.base", "uvicorn_worker",
           "prometheus_client", "msgspec", "orjson", "yaml")


def preload() -> None:
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # not installed: the check imports what it needs itself


def run_forked(code: str, root: str) -> tuple[int, str]:
    """Run `code` in a child of this process, from `root`; (its exit code, what it wrote to stderr)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_end)
        os.dup2(write_end, 2)
        os.dup2(write_end, 1)  # stdout is this process's reply channel: the check's prints go with its stderr
        status = 0
        try:
            os.chdir(root)
            sys.path.insert(0, root)
            exec(compile(code, "<string>", "exec"), {"__name__": "__main__"})
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
            status = 1
        sys.stderr.flush()
        os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, errors="replace") as said:
        stderr = said.read()
    _, wait_status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(wait_status), stderr


def serve(requests_in, replies_out) -> None:
    for line in requests_in:
        request = json.loads(line)
        status, stderr = run_forked(request["code"], request["root"])
        replies_out.write(json.dumps({"exit": status, "stderr": stderr}) + "\n")
        replies_out.flush()


if __name__ == "__main__":
    preload()
    print(json.dumps({"ready": True}), flush=True)
    serve(sys.stdin, sys.stdout)
