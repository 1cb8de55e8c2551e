"""Loopback ports: whether one is taken, a free one, a whole free local layout."""
from __future__ import annotations

import random
import socket

from meshtools.topology import DEFAULT_REPLICAS, LocalLayout


def port_in_use(host: str, port: int) -> bool:
    """Whether binding `host:port` fails (SO_REUSEADDR: a port in TIME_WAIT counts as free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def free_layout(replicas: int = DEFAULT_REPLICAS) -> LocalLayout:
    """A LocalLayout whose every port is free right now (never a developer's own 8000/9411)."""
    for _ in range(200):
        base = random.randrange(20000, 60000, 4)
        layout = LocalLayout(front_port=free_port(), trace_proxy_port=free_port(), base_port=base, replicas=replicas)
        ports = layout.ports()
        if len(set(ports)) == len(ports) and not any(port_in_use(layout.host, p) for p in ports):
            return layout
    raise RuntimeError("no free block of loopback ports found")
