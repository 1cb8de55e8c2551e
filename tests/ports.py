"""Free loopback ports for tests: never the ports a developer's own mesh uses."""
from __future__ import annotations

import random
import socket

from meshtools.local_mesh import port_in_use
from meshtools.topology import LocalLayout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_layout(replicas: int = 3) -> LocalLayout:
    """A LocalLayout whose every port is free right now."""
    for _ in range(200):
        base = random.randrange(20000, 60000, 4)
        layout = LocalLayout(front_port=free_port(), trace_proxy_port=free_port(), base_port=base, replicas=replicas)
        ports = layout.ports()
        if len(set(ports)) == len(ports) and not any(port_in_use(layout.host, p) for p in ports):
            return layout
    raise RuntimeError("no free block of loopback ports found")
