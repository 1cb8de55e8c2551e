"""Delivery that survives (issue 21, item 9): outages, SIGTERM and kill -9 lose no span that
fits the spool, and what does not fit is counted."""
from __future__ import annotations

import json
import os
import secrets
import signal

import pytest
import requests

from meshtools.shared.net import free_port
from tests.support.honeycomb_standin import honeycomb_standin
from tests.support.trace_proxy_process import running_proxy
from tests.support.waiting import wait_for
from trace_proxy import create_app
from trace_proxy.settings import Settings
from trace_proxy.sinks.spool import Spool

KEY = "hcaik_standin_" + secrets.token_hex(8)
JSON = {"Content-Type": "application/json"}


def spans(trace_id: str, n: int, first: int = 1) -> list[dict]:
    return [{"traceId": trace_id, "id": f"{first + i:016x}", "name": "kept", "timestamp": 1_700_000_000_000_000,
             "duration": 5, "localEndpoint": {"serviceName": "svc"}} for i in range(n)]


def post_many(url_or_client, trace_id: str, batches: int, per_batch: int = 100) -> None:
    for n in range(batches):
        body = json.dumps(spans(trace_id, per_batch, 1 + n * per_batch))
        if isinstance(url_or_client, str):
            reply = requests.post(f"{url_or_client}/api/v2/spans", data=body, headers=JSON, timeout=10)
        else:
            reply = url_or_client.post("/api/v2/spans", data=body, headers=JSON)
        assert reply.status_code == 202


def metrics_of(url: str) -> dict:
    return requests.get(f"{url}/metrics.json", timeout=5).json()


@pytest.mark.parametrize("status", [503, 429])
def test_an_outage_loses_nothing_and_ends_in_delivery(status):
    with honeycomb_standin(keep_events=False) as standin:
        app = create_app(Settings(writekey=KEY, api_host=standin.url, dataset="spool"))
        client = app.test_client()
        try:
            standin.outage = status
            post_many(client, secrets.token_hex(8), 20)
            wait_for(lambda: standin.stats()["outage_answers"] >= 2, 20, "a retry during the outage")
            during = client.get("/metrics.json").get_json()
            assert during["dropped"] == {} and during["spools"]["honeycomb"]["spans"] == 2000
            standin.outage = None
            after = wait_for(lambda: (m := client.get("/metrics.json").get_json())["forwarded"].get("honeycomb") == 2000
                             and m, 30, "every span forwarded after the outage")
            assert standin.stats()["accepted"] == 2000 and after["dropped"] == {}
            assert after["retried"]["honeycomb"] >= 100 and after["spools"]["honeycomb"]["spans"] == 0
        finally:
            app.extensions["trace_proxy"].close()


def test_a_full_spool_counts_what_it_cannot_keep():
    with honeycomb_standin(keep_events=False) as standin:
        app = create_app(Settings(writekey=KEY, api_host=standin.url, spool_bytes=30_000))
        client = app.test_client()
        try:
            standin.outage = 503
            for _ in range(10):  # random tags: bodies that do not compress to nothing
                batch = [{**span, "tags": {"r": secrets.token_hex(64)}} for span in spans(secrets.token_hex(8), 100)]
                assert client.post("/api/v2/spans", data=json.dumps(batch), headers=JSON).status_code == 202
            def accounted():  # everything spooled or dropped: nothing waits for the spooler
                m = client.get("/metrics.json").get_json()
                spooled = m["spools"]["honeycomb"]["spans"]
                return m["queues"]["honeycomb"] == spooled and spooled + sum(
                    m["dropped"].get("honeycomb", {}).values()) == 1000 and m

            metrics = wait_for(accounted, 10, "all accounted")
            assert metrics["dropped"]["honeycomb"]["spool_full"] > 0
            assert metrics["spools"]["honeycomb"]["bytes"] <= 30_000
        finally:
            app.extensions["trace_proxy"].close()


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_a_restart_during_an_outage_sends_the_spool_on_the_next_start(tmp_path, how):
    port = free_port()  # Honeycomb down: nothing listens there yet
    env = {"HONEYCOMB_API_KEY": KEY, "HONEYCOMB_API_HOST": f"http://127.0.0.1:{port}"}
    spool = tmp_path / "spool"
    with running_proxy("--spool-dir", str(spool), "--shutdown-seconds", "2", env=env) as proxy:
        post_many(proxy.url, secrets.token_hex(8), 20)
        wait_for(lambda: metrics_of(proxy.url)["spools"]["honeycomb"]["spans"] == 2000, 15, "2,000 spans spooled")
        os.killpg(proxy.process.pid, getattr(signal, how))
        proxy.process.wait(timeout=30)
        output = proxy.output()
    assert list(spool.glob("*.body")), output[-2000:]
    if how == "SIGTERM":
        assert "2000 spans kept in" in output
    with honeycomb_standin(port, keep_events=False) as standin:
        with running_proxy("--spool-dir", str(spool), env=env) as again:
            wait_for(lambda: standin.stats()["accepted"] >= 2000, 30, "the spool sent on the next start")
            assert standin.stats()["accepted"] == 2000
            wait_for(lambda: metrics_of(again.url)["spools"]["honeycomb"]["spans"] == 0, 10, "the spool emptied")
    assert not list(spool.glob("*.body"))


def test_the_spool_keeps_bodies_in_order_across_a_reopen(tmp_path):
    first = Spool(tmp_path, 10_000)
    a, b = first.put("d1", 3, b"one"), first.put("d2", 4, b"two")
    assert first.put("d3", 1, b"x" * 10_000) is None  # no room
    assert first.stats() == {"bytes": a.size + b.size, "spans": 7, "bodies": 2}
    again = Spool(tmp_path, 10_000)
    claimed = again.claim()
    assert (claimed.dataset, claimed.events, again.data(claimed)) == ("d1", 3, b"one")
    again.remove(claimed)
    nxt = again.claim()
    assert (nxt.dataset, again.data(nxt)) == ("d2", b"two") and again.claim() is None
    again.release(nxt)
    assert again.claim().seq == nxt.seq
    assert again.put("d4", 1, b"four").seq > nxt.seq


def test_the_local_mesh_gives_the_proxy_a_spool_under_its_state_folder(tmp_path):
    from meshtools.local.mesh import TRACE_PROXY_PROGRAM, LocalMesh, programs
    from meshtools.shared.net import free_layout

    mesh = LocalMesh(layout=free_layout(replicas=1), state_dir=tmp_path)
    proxy = next(p for p in programs(mesh.layout, mesh.envoy_dir, envoy="envoy", proxy_dir=mesh.trace_proxy_dir)
                 if p.name == TRACE_PROXY_PROGRAM)
    spool_dir = proxy.command[proxy.command.index("--spool-dir") + 1]
    assert spool_dir.startswith(str(tmp_path))


def test_the_clusters_proxy_spools_to_an_empty_dir_it_mounts():
    import yaml

    from meshtools.shared.topology import PROJECT_ROOT

    docs = list(yaml.safe_load_all((PROJECT_ROOT / "manifests/base/trace-proxy.yaml").read_text()))
    pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    spool_dir = container["args"][container["args"].index("--spool-dir") + 1]
    mount = next(m for m in container["volumeMounts"] if spool_dir.startswith(m["mountPath"] + "/"))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert "emptyDir" in volume and volume["emptyDir"].get("medium") != "Memory"
    spool_bytes = int(container["args"][container["args"].index("--spool-bytes") + 1])
    limit = volume["emptyDir"]["sizeLimit"]
    assert limit.endswith("Mi") and spool_bytes < int(limit[:-2]) * 1024 * 1024


def test_a_reopened_spool_knows_which_events_of_a_body_are_span_events_or_links(tmp_path):
    """Honeycomb answers once per event: a body spooled before a restart must still say how
    many events it holds besides its spans, or its answer cannot be read and it is lost."""
    Spool(tmp_path, 10_000).put("d1", 2, b"body", ["a", None, None, "b"], [1, 2])
    claimed = Spool(tmp_path, 10_000).claim()
    assert (claimed.events, claimed.annotations) == (2, [1, 2])
