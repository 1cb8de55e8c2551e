"""The honeycomb-writekey Secret (key `key`, as in the seed) for the trace proxy.

The key comes from HONEYCOMB_API_KEY / HONEYCOMB_WRITEKEY or a hidden prompt and reaches
kubectl only on stdin: `create secret --from-file=key=/dev/stdin --dry-run=client` renders
the object, `apply -f -` stores it. It never appears in argv, on screen or in a file.
"""
from __future__ import annotations

import getpass
import os
import sys

from meshtools.kubectl import Kubectl
from meshtools.topology import TRACE_PROXY

SECRET_NAME = "honeycomb-writekey"
SECRET_KEY = "key"
KEY_ENV_VARS = ("HONEYCOMB_API_KEY", "HONEYCOMB_WRITEKEY")  # ours first, then the seed's
NO_KEY_MESSAGE = (
    "No Honeycomb key (set HONEYCOMB_API_KEY to send spans to Honeycomb): "
    "spans stay local in the trace proxy (`inv traces`)."
)


def key_from_env(environ=os.environ) -> str | None:
    for name in KEY_ENV_VARS:
        value = environ.get(name, "").strip()
        if value:
            return value
    return None


def prompt_for_key(stdin=None) -> str | None:
    """Ask without echo, only when someone is at a terminal to answer."""
    stdin = stdin or sys.stdin
    if not stdin.isatty():
        return None
    try:
        return getpass.getpass("Honeycomb API key (hidden; Enter to skip): ").strip() or None
    except (EOFError, KeyboardInterrupt):
        return None


def apply_secret(kubectl: Kubectl, key: str) -> None:
    rendered = kubectl.run(
        "create", "secret", "generic", SECRET_NAME,
        f"--from-file={SECRET_KEY}=/dev/stdin", "--dry-run=client", "--output=yaml",
        input=key, capture=True,
    ).stdout
    kubectl.run("apply", "-f", "-", input=rendered, capture=True)


def secret_exists(kubectl: Kubectl) -> bool:
    return kubectl.exists("secret", SECRET_NAME)


def restart_trace_proxy(kubectl: Kubectl) -> bool:
    """The trace proxy reads its key at start: restart it so a new key takes effect."""
    if not kubectl.exists("deployment", TRACE_PROXY):
        return False
    kubectl.run("rollout", "restart", f"deployment/{TRACE_PROXY}", capture=True)
    return True


def store_key(kubectl: Kubectl, key: str | None) -> bool:
    """Create or update the Secret; False (spans stay local) when there is no key."""
    if not key:
        return False
    apply_secret(kubectl, key)
    return True
