"""echo and demo: one request through the mesh, and the newcomer's tour of a trace."""
from __future__ import annotations

import requests
from invoke import Exit, task
from rich.markup import escape

from meshtools.views.front import EchoReply, echo as send_echo
from meshtools.local import launch
from meshtools.tasks import options
from meshtools.tasks.cli import MeshTask
from meshtools.tasks.options import FRONT_URL_HELP, TRACER_HELP, layout_from, local_timeout, mesh_from, tracer_from
from meshtools.shared.topology import DEFAULT_REPLICAS
from meshtools.views.trace_lookup import find_trace
from meshtools.views.trace_view import render_trace, terminal_console
from meshtools.views.urls import readable, shorten, url_flag
from meshtools.views.zipkin_client import TraceProxyError, ZipkinClient

DEMO_NAMES = ("friend", "earth", "chris")  # chris: the seed's error path
DEFAULT_ECHO_NAME = "friend"


def _echo_or_exit(front_url: str, name: str) -> EchoReply:
    url_flag(front_url)
    try:
        return send_echo(front_url, name)
    except requests.RequestException as exc:
        raise Exit(f"Nothing answered at {shorten(front_url)} ({type(exc).__name__}); start the mesh with "
                   "`inv local.up` (or `inv forward` for the cluster) or pass --url.", code=1)


@task(klass=MeshTask, metavars={"name": "NAME", "url": "URL"},
      help={"name": f"the name to echo (default {DEFAULT_ECHO_NAME}; any text: it is URL-encoded)",
            "url": FRONT_URL_HELP})
def echo(c, name=DEFAULT_ECHO_NAME, url=None):
    """GET /echo/NAME through front-envoy; print the reply.

    A reply other than 2xx exits non-zero. The last lines say how many tries front-envoy made
    (x-envoy-attempt-count: 2 or more means it retried) and how to see the request's trace.
    """
    if not name:
        raise Exit(f"--name needs a name, e.g. --name {DEFAULT_ECHO_NAME} (the default when --name is left out).")
    reply = _echo_or_exit(options.front_url(c, url), name)
    print(reply.body.rstrip())
    print(f"-- HTTP {reply.status} · x-request-id {reply.request_id or '(none)'}")
    if reply.attempts:
        retried = " (front-envoy retried it)" if reply.attempts != "1" else ""
        print(f"-- x-envoy-attempt-count {reply.attempts}{retried}")
    if reply.request_id:
        # Every span carries the request id; `inv traces --id` finds the trace by it.
        print(f"-- trace: inv traces --id {reply.request_id}")
    if not reply.ok:
        raise Exit(f"{shorten(readable(reply.url))} answered HTTP {reply.status}.", code=1)


@task(klass=MeshTask, metavars={"replicas": "N", "tracer": "TRACER"},
      help={"replicas": f"service1 replicas when it starts the mesh (default {DEFAULT_REPLICAS})",
            "tracer": TRACER_HELP})
def demo(c, replicas=None, tracer=None):
    """Start the local mesh (or reuse it), send a few requests and show a trace."""
    console = terminal_console()
    running = mesh_from(c)
    wanted = tracer_from(c, tracer, "local")
    asked = tracer or c.config.get("local", {}).get("tracer")
    if running.is_running():
        # A second `inv demo` is the natural thing to try: show the tour again on the same mesh.
        layout = running.layout
        # Refused before "reusing it" is said: a mesh that is not what was asked for is not reused.
        if asked and wanted != running.tracer:
            raise Exit(f"The running mesh uses the {running.tracer} tracer: `inv local.down`, then "
                       f"`inv demo --tracer {wanted}`.", code=1)
        asked_replicas = options.whole_number(replicas, "--replicas", minimum=1)
        if asked_replicas is not None and asked_replicas != layout.replicas:
            n = layout.replicas
            raise Exit(f"The running mesh runs {n} service1 replica{'s' if n != 1 else ''}: `inv local.down`, "
                       f"then `inv demo --replicas {asked_replicas}`.", code=1)
        console.print(f"The local mesh is already up; reusing it ({running.tracer} tracer).")
    else:
        layout = layout_from(c, replicas=replicas)
        launch.start(mesh_from(c, layout, wanted), console, local_timeout(c))
    console.print(f"[green]The mesh is up:[/] front {layout.front_url}, trace proxy {layout.trace_proxy_url}\n")
    replies = []
    for name in DEMO_NAMES:
        reply = _echo_or_exit(layout.front_url, name)
        replies.append(reply)
        style = "green" if reply.ok else "bold red"
        outcome = "" if reply.ok else "  (ERROR on purpose: the app fails every /echo/chris)"
        console.print(f"GET /echo/{escape(name)} → [{style}]HTTP {reply.status}[/]{outcome}")
    first = replies[0]
    console.print(f"\nThe trace of GET /echo/{DEMO_NAMES[0]} (x-request-id {first.request_id}), "
                  f"read back from the trace proxy's Zipkin API:\n")
    try:
        spans = find_trace(ZipkinClient(layout.trace_proxy_url), first.request_id or "")
    except TraceProxyError as exc:
        raise Exit(str(exc), code=1)
    render_trace(spans, console)
    if spans:
        # A URL on a line of its own: 80 columns never break it.
        console.print(f"\nIn your browser, this trace:\n  {layout.trace_proxy_url}/trace/{spans[0]['traceId']}\n"
                      f"and every trace, the heatmap and the service graph:\n  {layout.trace_proxy_url}/",
                      soft_wrap=True)
    console.print(
        "\nThe mesh keeps running. Next: `inv echo --name you`, `inv load`, `inv traces` "
        "(`--breakdown serviceName,http.url`, `--heatmap`, `--id ID`); `inv local.status` shows the processes "
        "and their logs; [bold]`inv local.down`[/] stops everything."
    )
