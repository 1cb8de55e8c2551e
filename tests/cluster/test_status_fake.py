"""`inv status --cluster`: one line per pod from kubectl, against the fake kubectl and kind."""
from __future__ import annotations

import json

import pytest

from meshtools.tasks import cli, status
from tests.support.fakes_harness import Fakes, fakes_for


def pod(name, app, ready=True, restarts=0, waiting=None, ports=(8080, 80), started="2026-11-26T17:00:00Z"):
    state = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    return {
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"containers": [{"name": "c", "ports": [{"containerPort": p} for p in ports]}]},
        "status": {"phase": "Running", "startTime": started,
                   "containerStatuses": [{"name": "c", "ready": ready, "restartCount": restarts, "state": state}]},
    }


PODS = {"kind": "List", "items": [
    pod("service2-5d7f-q4h2n", "service2", ready=False, restarts=4, waiting="CrashLoopBackOff"),
    pod("front-envoy-7c9d-4xk2p", "front-envoy", ports=(80,)),
    pod("service1-6f8b-m2w7t", "service1", restarts=1),
]}
LOGS = [
    '[pod/service1-6f8b-m2w7t/service] 2026-11-26T18:00:02.000000000Z {"time": "2026-11-26T18:00:02.000Z", '
    '"request_id": "r1", "error": "too many chrises", "name": "chris"}',
    '[pod/service1-6f8b-m2w7t/service] 2026-11-26T18:00:03.000000000Z {"time": "2026-11-26T18:00:03.000Z", '
    '"method": "GET", "path": "/echo/ann", "status": 200}',
    '[pod/front-envoy-7c9d-4xk2p/envoy] 2026-11-26T18:00:01.000000000Z {"time":"2026-11-26T18:00:01.000Z",'
    '"method":"GET","path":"/echo/ann","status":200}',
]


class StatusFakes(Fakes):
    def namespace(self, configure=None):
        ns = super().namespace(configure)
        ns.add_task(status.status)
        return ns


@pytest.fixture
def fakes(tmp_path, monkeypatch, capsys):
    cli.adjust_program()
    yield from fakes_for(StatusFakes, tmp_path, monkeypatch, capsys)


def test_cluster_status_is_one_line_per_pod_with_health_restarts_ports_and_last_error_fake(fakes):
    fakes.inv("cluster.up")
    (fakes.state / "pods.json").write_text(json.dumps(PODS))
    (fakes.state / "logs.txt").write_text("\n".join(LOGS) + "\n")
    code, out, err = fakes.inv("status", "--cluster")
    assert code == 1, err  # service2 is not up
    lines = out.splitlines()
    assert lines[0] == "cluster (kind-envoy-tracing): 2 of 3 up"
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert list(rows) == ["front-envoy-7c9d-4xk2p", "service1-6f8b-m2w7t", "service2-5d7f-q4h2n"]
    assert rows["front-envoy-7c9d-4xk2p"][1:4] == ["up", "0", "80"]
    assert rows["service1-6f8b-m2w7t"][1:4] == ["up", "1", "8080,80"]
    # Its last error line (local time, then what it says), cut with an ellipsis to fit 80 columns.
    assert " ".join(rows["service1-6f8b-m2w7t"][6:]).startswith("too many ch")
    assert rows["service2-5d7f-q4h2n"][1:3] == ["CrashLoopBackOff", "4"]
    assert all(len(line) <= 80 for line in lines)
    # Every kubectl call named the kind cluster's context, never the current one (production).
    calls = fakes.argvs("kubectl")
    assert calls and all(call[1:3] == ["--context", "kind-envoy-tracing"] for call in calls)
    assert len(fakes.argvs("kubectl", "logs")) == 3


def test_cluster_status_with_no_pods_says_how_to_deploy_fake(fakes):
    fakes.inv("cluster.up")
    code, out, _ = fakes.inv("status", "--cluster")
    assert code == 3 and "No pods of the stack on kind-envoy-tracing; `inv deploy` puts them there." in out
