"""dev: edit and see it served. Watch the sources and restart only what a change affects.

Local (the default): meshtools.local.dev on the running mesh (started if needed).
Cluster (--cluster): meshtools.cluster.live syncs code into a dev-mode stack's pods
(`inv deploy --dev`); on any other stack meshtools.cluster.dev builds, loads and deploys.
"""
from __future__ import annotations

from invoke import Exit, task
from rich.console import Console

from meshtools.cluster import dev as cluster_dev
from meshtools.cluster import live as cluster_live
from meshtools.local import dev as local_dev
from meshtools.local import launch
from meshtools.tasks.cli import MeshTask
from meshtools.tasks.options import layout_from, local_timeout, mesh_from, running_mesh, target_from

def say(line: str) -> None:
    print(line, flush=True)  # one line per change, never wrapped: a log of what happened


WATCHING = "Watching service/, trace_proxy/ and manifests/base/envoy/ (Ctrl-C stops watching)."


@task(klass=MeshTask, help={
    "cluster": "the kind cluster instead: on a dev-mode stack (`inv deploy --dev`) code is synced into the "
               "running pods; otherwise each change builds, loads and deploys the image (a rollout)",
})
def dev(c, cluster=False):
    """Watch the sources; on a change restart what it affects and say when it serves again.

    service/: the app processes, gracefully, without refusing a request; an Envoy config:
    the Envoys that run it, once it validates; trace_proxy/: the trace proxy. A change that
    does not start leaves the running processes serving and prints why. The mesh stays up.
    """
    if cluster:
        target = target_from(c)
        cluster_dev.check(target)
        try:
            live = cluster_live.LiveUpdate(target)
            if cluster_live.is_dev_stack(live.kubectl):
                say(f"{WATCHING} On each change: synced into the pods on {target.context} (dev mode); "
                    f"a change to {', '.join(cluster_live.DEPENDENCY_FILES)} builds and deploys.")
                live.watch(say)
            else:
                say(f"{WATCHING} On each change: inv build deploy on {target.context} (`inv deploy --dev` "
                    "once makes it a live update instead, without a build or a pod restart).")
                cluster_dev.watch(target, say)
        except KeyboardInterrupt:
            say("Stopped watching; the cluster keeps running (`inv down` deletes it).")
        return
    mesh = running_mesh(c)
    if mesh is None:
        mesh = launch.start(mesh_from(c, layout_from(c)), Console(), local_timeout(c))
        say(f"The local mesh is up: front {mesh.layout.front_url}.")
    else:
        say(f"Using the running local mesh: front {mesh.layout.front_url}.")
    say(WATCHING)
    try:
        local_dev.DevLoop(mesh).watch(say)
    except KeyboardInterrupt:
        say("Stopped watching; the local mesh is still up (`inv local.down` stops it).")
    except local_dev.DevError as exc:
        raise Exit(str(exc)) from None
