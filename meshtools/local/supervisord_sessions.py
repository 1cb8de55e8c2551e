"""supervisord for the local mesh, each program started in a session of its own.

Linux's scheduler (with autogroup, its default) shares the CPU between sessions before it
shares it between processes. supervisord puts every program in its own process group but in
supervisord's one session, so on a machine busy elsewhere the whole mesh, ten processes
starting at once, got the share of a single process: `local.up` took seconds longer than the
work it does. A session of its own per program is what each container or pod has (a cgroup
of its own): each process gets its own share, as in the cluster.

setsid() makes the child the leader of a new process group as well (its pid, as setpgrp()
did), so supervisord's stopasgroup/killasgroup reach what it started just the same.
"""
from __future__ import annotations

import os

from supervisor import options, supervisord


def _own_session(_options) -> None:
    os.setsid()


def main() -> None:
    # ServerOptions.setpgrp is what supervisord calls in each child between fork and exec.
    options.ServerOptions.setpgrp = _own_session
    supervisord.main()


if __name__ == "__main__":
    main()
