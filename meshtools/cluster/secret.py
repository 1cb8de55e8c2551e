"""The honeycomb-writekey Secret (key `key`, as in the seed) for the trace proxy.

The key comes from the variables the trace proxy itself reads (trace_proxy.settings.KEY_VARIABLES,
first set wins) or a hidden prompt, and reaches kubectl only on stdin: `create secret
--from-file=key=/dev/stdin --dry-run=client` renders the object, `apply -f -` stores it.
It never appears in argv, on screen or in a file.
The trace proxy reads its key only at start, and a restart empties its in-memory span store,
so it is restarted only when `apply` reports that the Secret actually changed.
"""
from __future__ import annotations

import getpass
import os
import sys

import yaml

from meshtools.cluster.kubectl import Kubectl
from meshtools.cluster.target import STACK_LABELS
from meshtools.shared.topology import TRACE_PROXY
from trace_proxy.settings import KEY_VARIABLES

SECRET_NAME = "honeycomb-writekey"
SECRET_KEY = "key"
NO_KEY_MESSAGE = (
    "No Honeycomb key (set HONEYCOMB_API_KEY to send spans to Honeycomb): "
    "spans stay local in the trace proxy (`inv traces`)."
)


def key_from_env(environ=os.environ) -> str | None:
    for name in KEY_VARIABLES:
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


def apply_secret(kubectl: Kubectl, key: str) -> bool:
    """Create or update the Secret; True unless kubectl reports it `unchanged` (same key)."""
    rendered = kubectl.run(
        "create", "secret", "generic", SECRET_NAME,
        f"--from-file={SECRET_KEY}=/dev/stdin", "--dry-run=client", "--output=yaml",
        input=key, capture=True,
    ).stdout
    applied = kubectl.run("apply", "-f", "-", input=labelled(rendered), capture=True).stdout
    # `secret/NAME created|configured|unchanged`; anything unexpected counts as a change.
    return "unchanged" not in applied.split()


def labelled(rendered: str) -> str:
    """The rendered Secret with the stack's labels, so `inv down` on a shared cluster removes it too."""
    secret = yaml.safe_load(rendered)
    secret.setdefault("metadata", {}).setdefault("labels", {}).update(STACK_LABELS)
    return yaml.safe_dump(secret, sort_keys=False)


def secret_exists(kubectl: Kubectl) -> bool:
    return kubectl.exists("secret", SECRET_NAME)


def restart_trace_proxy(kubectl: Kubectl) -> bool:
    """Restart the trace proxy (if deployed) so it reads a new key; False when it is not deployed."""
    if not kubectl.exists("deployment", TRACE_PROXY):
        return False
    kubectl.run("rollout", "restart", f"deployment/{TRACE_PROXY}", capture=True)
    # Back once the new pod serves: a port-forward started earlier would reach the old one, going away.
    kubectl.rollout_status(TRACE_PROXY)
    return True
