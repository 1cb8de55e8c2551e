"""Which local processes a list of names means, the same for `inv logs` and `inv local.restart`.

A name is a process's own (service1-0-app, front-envoy) or the start of several (service1:
each replica's app and Envoy; service1-0: one replica's pair).
"""
from __future__ import annotations

from typing import Iterable


class UnknownName(LookupError):
    """A name that matches no process; its message names the ones there are."""


def expand(known: list[str], names: Iterable[str]) -> list[str]:
    """The processes NAMES mean, in the order asked, each once; no names: every one of `known`."""
    names = [n for n in names if n]
    if not names:
        return list(known)
    chosen: list[str] = []
    for name in names:
        matches = [name] if name in known else [p for p in known if p.startswith(name)]
        if not matches:
            raise UnknownName(f"No process named {name!r}; the local processes are {', '.join(known)}.")
        chosen += [m for m in matches if m not in chosen]
    return chosen
