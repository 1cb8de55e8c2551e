"""envoy-tracing: watch distributed tracing with Envoy end to end.

This file only assembles the task collections; each lives in meshtools/tasks/ over a
tested module in meshtools/. `inv --list` shows them all.
"""
from meshtools.tasks import cli, cluster, demo, dev, docs, local, logs, stack, status, views

# Bare `inv` lists the tasks; numeric flags say what they take in --help (meshtools/tasks/cli.py).
cli.adjust_program()
ns = cli.MeshCollection()

# The local target (default) and the kind cluster target.
ns.add_collection(local.ns)
ns.add_collection(cluster.ns)

# Top-level tasks: either target.
ns.add_task(demo.demo)
ns.add_task(demo.echo)
ns.add_task(views.load)
ns.add_task(views.traces)
ns.add_task(views.bench)
ns.add_task(logs.logs)
ns.add_task(status.status)
ns.add_task(dev.dev)
ns.add_task(docs.docs)
for cluster_task in cluster.TOP_LEVEL_TASKS:  # build, deploy, secret, forward
    ns.add_task(cluster_task)
ns.add_task(stack.up)
ns.add_task(stack.down)

# invoke merges a sub-collection's settings only for that collection's own tasks; the
# top-level ones (demo, build, up, …) read `local.*` and `cluster.*` too, and an
# INVOKE_LOCAL_* / INVOKE_CLUSTER_* variable only applies to a setting it knows.
ns.configure(local.ns.configuration())
ns.configure(cluster.ns.configuration())
ns.configure({"target": "local"})  # what `inv up`/`inv down` act on without --cluster (meshtools/tasks/stack.py)
