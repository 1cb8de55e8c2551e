"""Loopback ports: whether one is taken or answers, a free one, a whole free local layout."""
from __future__ import annotations

import random
import socket

from meshtools.shared.topology import DEFAULT_REPLICAS, LOOPBACK, LocalLayout


def port_in_use(host: str, port: int) -> bool:
    """Whether binding `host:port` fails (SO_REUSEADDR: a port in TIME_WAIT counts as free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def accepts_connections(host: str, port: int, timeout: float = 0.5) -> bool:
    """A bare TCP connect: probes a listener without sending it a request (none lands in a trace)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def free_layout(replicas: int = DEFAULT_REPLICAS) -> LocalLayout:
    """A LocalLayout whose every port is free right now (never a developer's own 8000/9411/4318)."""
    for _ in range(200):
        # Below Linux's ephemeral range (32768–60999): a port free now but inside it can be taken
        # by any outgoing connection before the mesh binds it (seen: an app restarting for two
        # minutes on "Connection in use" while the machine was busy).
        base = random.randrange(20000, 32000, 4)
        try:
            layout = LocalLayout(front_port=free_port(), trace_proxy_port=free_port(), otlp_port=free_port(),
                                 base_port=base, replicas=replicas)
        except ValueError:  # a free port fell inside the block: draw again
            continue
        if not any(port_in_use(layout.host, p) for p in layout.ports()):
            return layout
    raise RuntimeError("no free block of loopback ports found")
