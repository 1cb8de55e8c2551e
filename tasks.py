"""envoy-tracing: watch distributed tracing with Envoy end to end.

This file only assembles the task collections; each lives in meshtools/tasks/ over a
tested module in meshtools/. `inv --list` shows them all.
"""
from invoke import Collection

from meshtools.tasks import demo, local
from meshtools.tasks import views

ns = Collection()
ns.add_collection(local.ns)
ns.add_task(demo.echo)
ns.add_task(demo.demo)
for view_task in (views.load, views.traces, views.bench):
    ns.add_task(view_task)
