"""envoy-tracing: watch distributed tracing with Envoy end to end.

This file only assembles the task collections; each lives in meshtools/tasks/ over a
tested module in meshtools/. `inv --list` shows them all.
"""
from invoke import Collection

from meshtools.tasks import local
from meshtools.tasks import views

ns = Collection()
ns.add_collection(local.ns)
for view_task in (views.load, views.traces, views.bench):
    ns.add_task(view_task)
