"""envoy-tracing: watch distributed tracing with Envoy end to end.

This file only assembles the task collections; each lives in meshtools/tasks/ over a
tested module in meshtools/. `inv --list` shows them all.
"""
from invoke import Collection

from meshtools.tasks import demo, local
from meshtools.tasks import views
from meshtools.tasks import cluster
from meshtools.tasks import stack

ns = Collection()
ns.add_collection(local.ns)
ns.add_task(demo.echo)
ns.add_task(demo.demo)
for view_task in (views.load, views.traces, views.bench):
    ns.add_task(view_task)
ns.add_collection(cluster.ns)
for cluster_task in cluster.TOP_LEVEL_TASKS:
    ns.add_task(cluster_task)
ns.add_task(stack.up)
ns.add_task(stack.down)
