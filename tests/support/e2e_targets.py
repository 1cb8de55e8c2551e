"""What the shared end-to-end tests need from a target: where it answers, what runs in it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from meshtools.local.mesh import LocalMesh
from meshtools.shared.topology import FRONT, SERVICE1, SERVICE2


@dataclass(frozen=True)
class Target:
    name: str  # "local" or "cluster"
    front_url: str
    trace_proxy_url: str
    # FRONT, SERVICE1, SERVICE2 → the names their spans carry, read when called: pods change.
    instances: Callable[[], dict[str, set[str]]]


def local_target(mesh: LocalMesh) -> Target:
    layout = mesh.layout
    names = {
        FRONT: {layout.front.name},
        SERVICE1: {i.name for i in layout.service1},
        SERVICE2: {i.name for i in layout.service2},
    }
    return Target("local", layout.front_url, layout.trace_proxy_url, lambda: names)


def serving_pod(body: str) -> str:
    """The pod (or instance) named in an /echo reply: `pod: NAME</code>`."""
    return body.rsplit("pod: ", 1)[1].split("<", 1)[0].strip()
