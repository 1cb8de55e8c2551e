"""`inv logs --cluster` and `inv dev --cluster`, against the fake kubectl, kind and docker."""
from __future__ import annotations

import re

import pytest

from meshtools.cluster.target import resolve
from meshtools.tasks import cli, logs
from tests.support.fakes_harness import Fakes, fakes_for

POD_LINES = [
    '[pod/service1-6f8b-m2w7t/envoy] 2026-11-26T18:00:02.000000000Z {"request_id":"req-a","path":"/echo/friend"}',
    '[pod/service1-6f8b-m2w7t/service] 2026-11-26T18:00:04.000000000Z {"request_id": "req-a", "status": 200}',
    '[pod/front-envoy-7c9d-4xk2p/envoy] 2026-11-26T18:00:01.000000000Z {"request_id":"req-a","status":200}',
    '[pod/service2-5d7f-q4h2n/service] 2026-11-26T18:00:03.000000000Z {"request_id": "req-b", "status": 200}',
]


class LogsFakes(Fakes):
    def namespace(self, configure=None):
        ns = super().namespace(configure)
        ns.add_task(logs.logs)
        return ns


@pytest.fixture
def fakes(tmp_path, monkeypatch, capsys):
    cli.adjust_program()  # as tasks.py does for `inv`: `inv logs service1 front-envoy` takes both names
    yield from fakes_for(LogsFakes, tmp_path, monkeypatch, capsys)


def test_cluster_logs_are_kubectl_logs_over_the_project_s_pods_in_time_order_fake(fakes):
    fakes.inv("cluster.up")
    (fakes.state / "logs.txt").write_text("\n".join(POD_LINES) + "\n")
    code, out, err = fakes.inv("logs", "--cluster", "--since", "10m")
    assert code == 0, err
    (call,) = fakes.argvs("kubectl", "logs")
    assert call[:3] == ["kubectl", "--context", "kind-envoy-tracing"]
    assert call[3:7] == ["logs", "-l", "app in (front-envoy,service1,service2,trace-proxy)", "--all-containers"]
    assert "--prefix" in call and "--since=600s" in call and "--follow" not in call
    assert out.splitlines() == [
        '[pod/front-envoy-7c9d-4xk2p/envoy] {"request_id":"req-a","status":200}',
        '[pod/service1-6f8b-m2w7t/envoy] {"request_id":"req-a","path":"/echo/friend"}',
        '[pod/service2-5d7f-q4h2n/service] {"request_id": "req-b", "status": 200}',
        '[pod/service1-6f8b-m2w7t/service] {"request_id": "req-a", "status": 200}',
    ]


def test_cluster_logs_of_one_request_and_of_named_apps_fake(fakes):
    fakes.inv("cluster.up")
    (fakes.state / "logs.txt").write_text("\n".join(POD_LINES) + "\n")
    code, out, err = fakes.inv("logs", "service1", "front-envoy", "--cluster", "--request", "req-a", "-f")
    assert code == 0, err
    (call,) = fakes.argvs("kubectl", "logs")
    assert "app in (service1,front-envoy)" in call and "--follow" in call
    assert len(out.splitlines()) == 3 and "req-b" not in out


def test_cluster_logs_of_an_unknown_app_name_the_apps_fake(fakes):
    fakes.inv("cluster.up")
    code, _, err = fakes.inv("logs", "service3", "--cluster")
    assert code == 1
    assert err.strip() == "No app named 'service3' in the cluster; the apps are front-envoy, service1, service2, trace-proxy."
    assert not fakes.argvs("kubectl", "logs")


def test_dev_on_the_cluster_builds_deploys_and_says_when_the_new_pods_serve_fake(fakes):
    # `inv dev --cluster` cannot run here; its steps run against the fakes.
    from meshtools.cluster import dev as cluster_dev
    from meshtools.shared.net import free_port
    from meshtools.shared.topology import PROJECT_ROOT

    fakes.inv("cluster.up")
    fakes.inv("build", "deploy", "--no-forward")
    code, _, err = fakes.inv("forward", "--front-port", str(free_port()), "--trace-proxy-port", str(free_port()))
    assert code == 0, err
    before = len(fakes.calls())
    target = resolve("envoy-tracing")
    line = cluster_dev.apply(target, [PROJECT_ROOT / "service" / "__init__.py", PROJECT_ROOT / "README.md"],
                             saved_at=None)
    assert re.fullmatch(r"service/__init__\.py changed → built \S+ in \d+\.\d s, deployed and rolled out in "
                        r"\d+\.\d s; new pods serving \d+\.\d s after the save", line), line
    calls = fakes.calls()[before:]
    steps = [c["argv"][:3] for c in calls]
    assert ["kind", "load", "docker-image"] in steps or any(s[:2] == ["kind", "load"] for s in steps)
    assert any(Fakes.is_call(c, "kubectl", "apply", "-k") for c in calls)
    assert any(Fakes.is_call(c, "kubectl", "rollout", "status") for c in calls)
    assert any(Fakes.is_call(c, "kubectl", "port-forward") for c in calls)  # the forwards, started again
    assert all(c["argv"][1:3] == ["--context", "kind-envoy-tracing"] for c in calls if c["argv"][0] == "kubectl")
    assert cluster_dev.apply(target, [PROJECT_ROOT / "README.md"]) is None


def test_dev_on_the_cluster_reports_a_failed_step_and_keeps_watching_fake(fakes, monkeypatch):
    from meshtools.cluster import dev as cluster_dev
    from meshtools.shared.topology import PROJECT_ROOT

    fakes.inv("cluster.up")
    monkeypatch.setenv("FAKE_DOCKER_DAEMON", "down")
    line = cluster_dev.apply(resolve("envoy-tracing"), [PROJECT_ROOT / "service" / "__init__.py"])
    assert line.startswith("service/__init__.py changed: NOT deployed, the running pods keep serving: Docker"), line
