"""logs: every process's log in one stream, on the local mesh or the kind cluster.

The local target merges the log files supervisord keeps (meshtools.local.logs); the cluster
target runs `kubectl logs` over the project's pods (meshtools.cluster.logs). Lines of one
request are found by its x-request-id or trace id, which the app's JSON lines and every
Envoy's access log carry.
"""
from __future__ import annotations

import collections
import sys
from datetime import datetime

from invoke import Exit, task

from meshtools.cluster import kind
from meshtools.cluster import logs as cluster_logs
from meshtools.cluster import stack
from meshtools.local import logs as local_logs
from meshtools.shared.durations import SYNTAX as DURATION_SYNTAX
from meshtools.shared.logs import parse_since
from meshtools.tasks.cli import MeshTask
from meshtools.tasks.options import mesh_from, target_from, whole_number

FOLLOW_TAIL = 10  # lines `inv logs -f` shows before the new ones, as `tail -f`


def since_flag(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_since(value)
    except ValueError as exc:
        raise Exit(str(exc)) from None


def emit(text: str) -> None:
    try:
        print(text, flush=True)
    except BrokenPipeError:  # `inv logs | head`: the reader has seen enough
        sys.stderr.close()
        raise SystemExit(0)


@task(
    klass=MeshTask,
    variadic="names",
    metavars={"since": "WHEN", "request": "ID", "names": "NAME,…", "tail": "N"},
    help={
        "names": "processes (also as words: inv logs service1 front-envoy; default: all): a name or its start, "
                 "e.g. service1 for each service1 replica's app and Envoy; on the cluster, apps (front-envoy, "
                 "service1, service2, trace-proxy)",
        "follow": "keep printing lines as they are written (Ctrl-C stops)",
        "since": f"only lines since then: a duration back ({DURATION_SYNTAX}) or a time like 2026-11-26T18:00 (UTC)",
        "request": "only the lines of one request: its x-request-id (as `inv echo` prints) or trace id",
        "cluster": "the kind cluster's pods (kubectl logs) instead of the local mesh",
        "tail": f"only the last N lines (of the merged stream; on the cluster, of each container); -f alone "
                f"starts {FOLLOW_TAIL} lines back",
        "json": "print each line as the process wrote it (JSON, raw), not rendered readable; the default "
                "when the output is not a terminal",
    },
)
def logs(c, names="", follow=False, since=None, request=None, cluster=False, tail=None, json=False):
    """Print the logs of every process (or NAME…) merged in time order, each line prefixed.

    On a terminal each line reads: time, process, level, method path status duration, ids.
    `inv logs service1 front-envoy -f`, `inv logs --tail 20`, `inv logs --since 5m`, `inv logs --request ID`.
    """
    moment = since_flag(since)
    last = whole_number(tail, "--tail", minimum=0)
    if last is None and follow and moment is None:
        last = FOLLOW_TAIL  # as `tail -f`: the recent lines, then the new ones
    readable = not json and sys.stdout.isatty()
    if request is not None and not request.strip():
        raise Exit("--request needs an x-request-id or a trace id, e.g. the one `inv echo` printed.")
    ids = {request.strip()} if request else None
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    if cluster:
        show_cluster(c, wanted, moment, follow, ids, last, readable)
        return
    logs_dir = mesh_from(c).logs_dir
    try:
        chosen = local_logs.select(logs_dir, wanted)
    except local_logs.LogsError as exc:
        raise Exit(f"{exc}" if wanted else f"{exc.args[0][:-1]}; `inv logs --cluster` reads the kind cluster's.")
    width = local_logs.prefix_width(chosen)
    render = local_logs.readable_line if readable else local_logs.format_line
    # Where the files end now: the backlog stops here and -f goes on from here, so a line
    # written while the backlog prints is neither lost nor shown twice.
    ends = local_logs.sizes(logs_dir, chosen)
    backlog = local_logs.merged(logs_dir, chosen, moment, ids, upto=ends)
    if last is not None:
        backlog = collections.deque(backlog, maxlen=last) if last else []
    shown = 0
    for line in backlog:
        emit(render(line, width))
        shown += 1
    if not follow:
        if ids and not shown and last != 0:
            raise Exit(f"No log line mentions {request.strip()}; is it an x-request-id or a trace id of this mesh?")
        return
    try:
        local_logs.follow(logs_dir, chosen, lambda line: emit(render(line, width)), ids, start=ends)
    except KeyboardInterrupt:
        pass


def show_cluster(c, wanted, moment, follow, ids, tail, readable) -> None:
    kind.require_tools("kubectl")
    try:
        # The kind cluster, or the context and namespace the invoke settings name (cluster.*).
        kubectl = stack.open_target(target_from(c))
        code = cluster_logs.show(kubectl, wanted, moment, follow, ids,
                                 (lambda text: emit(cluster_logs.readable_line(text))) if readable else emit, tail)
    except cluster_logs.LogsError as exc:
        raise Exit(str(exc)) from None
    except KeyboardInterrupt:
        return
    if code:
        raise Exit(f"kubectl logs failed (exit {code}); is the cluster up (`inv cluster.status`)?", code=code)
