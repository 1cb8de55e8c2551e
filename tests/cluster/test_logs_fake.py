"""`inv logs --cluster` and its kubectl call, against the fake kubectl."""
from __future__ import annotations

import pytest

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
