"""A Honeycomb stand-in inside the kind cluster, and the trace proxy pointed at it.

The stand-in (tests/support/honeycomb_standin.py, mounted from a ConfigMap) runs in a pod of
the service image, so spans the trace proxy forwards never leave the cluster. The tests read
what it kept with `kubectl exec`.
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

import yaml

from meshtools.cluster.kubectl import Kubectl
from meshtools.shared.topology import TRACE_PROXY

NAME = "honeycomb-standin"
PORT = 8080
SCRIPT = Path(__file__).with_name("honeycomb_standin.py")


def manifests(image_ref: str) -> str:
    labels = {"app": NAME}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": NAME},
        "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
            "containers": [{
                "name": NAME, "image": image_ref, "imagePullPolicy": "IfNotPresent",
                "command": ["python", "/standin/honeycomb_standin.py", str(PORT), "--host", "0.0.0.0",
                            "--keep-events"],
                "ports": [{"containerPort": PORT}],
                "readinessProbe": {"httpGet": {"path": "/stats", "port": PORT}, "periodSeconds": 1},
                "volumeMounts": [{"name": "standin", "mountPath": "/standin"}],
            }],
            "volumes": [{"name": "standin", "configMap": {"name": NAME}}],
        }}},
    }
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": NAME},
               "spec": {"selector": labels, "ports": [{"port": PORT, "targetPort": PORT}]}}
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": NAME},
              "data": {"honeycomb_standin.py": SCRIPT.read_text()}}
    return yaml.safe_dump_all([config, deployment, service])


@contextlib.contextmanager
def honeycomb_in_cluster(kubectl: Kubectl, image_ref: str):
    """The stand-in deployed and the trace proxy sending to it; both undone afterwards."""
    kubectl.run("apply", "-f", "-", input=manifests(image_ref), capture=True)
    try:
        kubectl.rollout_status(NAME)
        kubectl.run("set", "env", f"deployment/{TRACE_PROXY}", f"HONEYCOMB_API_HOST=http://{NAME}:{PORT}",
                    capture=True)
        kubectl.rollout_status(TRACE_PROXY)
        yield
    finally:
        kubectl.run("set", "env", f"deployment/{TRACE_PROXY}", "HONEYCOMB_API_HOST-", capture=True, check=False)
        kubectl.run("delete", "deployment,service,configmap", NAME, "--ignore-not-found", capture=True,
                    check=False)
        kubectl.rollout_status(TRACE_PROXY)


def kept(kubectl: Kubectl, trace_id: str) -> dict:
    """What the stand-in kept of one trace: {"events": N, "keys": [the keys they came with]}."""
    fetch = ("import sys, urllib.request; "
             f"sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:{PORT}/traces/' + sys.argv[1]).read().decode())")
    result = kubectl.run("exec", f"deployment/{NAME}", "--", "python", "-c", fetch, trace_id, capture=True)
    return json.loads(result.stdout)
