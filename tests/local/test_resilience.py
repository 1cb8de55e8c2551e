"""Faults on a real local mesh: what a user sees while parts of it die and come back.

The mesh here is this module's own (the session's `local_mesh` is shared and must not be
harmed). Envoy's behaviour under faults comes from manifests/base/envoy/*.yaml: retries of
GETs on connect-failure/reset/503 with a budget, outlier detection, route timeouts.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass

import pytest
import requests

from meshtools.local.mesh import TRACE_PROXY_PROGRAM, LocalMesh
from meshtools.views.trace_lookup import REQUEST_ID_TAG, find_trace
from meshtools.views.zipkin_client import ZipkinClient
from tests.conftest import running_mesh
from tests.support.trace_assertions import assert_echo_trace, children, service
from tests.support.waiting import wait_for

ATTEMPT_TAG = "x-envoy-attempt-count"  # custom tag on every ingress span (see the Envoy configs)
HANDFUL = 5
FRONT_ROUTE_TIMEOUT = 15.0  # front-envoy.yaml's route timeout


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    with running_mesh(tmp_path_factory.mktemp("faults"), replicas=3) as mesh:
        yield mesh


@dataclass
class Outcome:
    at: float  # time.monotonic() when the answer (or the error) came
    status: int | str  # HTTP status, or the exception's name
    request_id: str | None
    attempts: int


class Load:
    """A few closed-loop clients sending /echo/NAME until stopped; every outcome is kept."""

    def __init__(self, url: str, workers: int = 4):
        self.url, self.outcomes, self._stop = url, [], threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(workers)]

    def _run(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            try:
                reply = session.get(f"{self.url}/echo/resilience", timeout=30)
                outcome = Outcome(time.monotonic(), reply.status_code, reply.headers.get("x-request-id"),
                                  int(reply.headers.get(ATTEMPT_TAG, "1")))
            except requests.RequestException as exc:
                outcome = Outcome(time.monotonic(), type(exc).__name__, None, 0)
            self.outcomes.append(outcome)

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def failures(self, after: float = 0.0) -> list[Outcome]:
        return [o for o in self.outcomes if o.status != 200 and o.at >= after]


def process(mesh: LocalMesh, name: str):
    return {p.name: p for p in mesh.status()}[name]


def restarted(mesh: LocalMesh, name: str, old_pid: int):
    state = process(mesh, name)
    return state.state == "RUNNING" and state.pid not in (0, old_pid) and state.healthy


def in_flight(mesh: LocalMesh, replica: str) -> bool:
    """Whether the replica's sidecar is serving a request right now (its admin gauge)."""
    (instance,) = [i for i in mesh.layout.service1 if i.name == replica]
    text = requests.get(f"http://{mesh.layout.host}:{instance.admin_port}/stats",
                        params={"filter": r"^http\.ingress_http\.downstream_rq_active$"}, timeout=5).text
    return int(text.rpartition(": ")[2] or 0) > 0


def echo(mesh: LocalMesh, name: str = "friend", timeout: float = 30) -> requests.Response:
    return requests.get(f"{mesh.layout.front_url}/echo/{name}", timeout=timeout)


def retried_trace(client: ZipkinClient, request_id: str) -> list[dict]:
    """The trace of a retried request once its root and its successful service1 branch arrived."""
    def complete():
        spans = find_trace(client, request_id, spans=1, timeout=0)
        roots = [s for s in spans if not s.get("parentId")]
        served = [s for s in spans if s.get("parentId") in {r["id"] for r in roots}
                  and s["tags"].get("http.status_code") == "200" and len(children(spans, s)) == 5
                  and all(children(spans, c) for c in children(spans, s))]
        return spans if roots and served else None
    return wait_for(complete, 10, f"the whole trace of retried request {request_id}")


# Killing the app's whole process group is what a crashing container does (its PID 1 and
# everything under it die together). SIGKILL to gunicorn's master alone would leave its
# worker holding the port, which no container can do.
KILLS = {
    "app": lambda pid: os.killpg(pid, signal.SIGKILL),
    "envoy": lambda pid: os.kill(pid, signal.SIGKILL),
}


@pytest.mark.parametrize("part", sorted(KILLS))
def test_killing_a_service1_replica_costs_at_most_a_handful_of_requests_and_the_trace_shows_the_retry(mesh, part):
    # A different replica each time: the one killed before may still be set aside by outlier
    # detection, and then no request would reach it.
    replica = f"service1-{sorted(KILLS).index(part)}"
    name = f"{replica}-{part}"
    victim = process(mesh, name).pid
    with Load(mesh.layout.front_url) as load:
        wait_for(lambda: len(load.outcomes) >= 20, 30, "the load to get going")
        # Kill it while it serves a request, so at least one request is cut off mid-way.
        wait_for(lambda: in_flight(mesh, replica), 10, f"a request in flight at {replica}")
        KILLS[part](victim)
        wait_for(lambda: restarted(mesh, name, victim), 30, f"supervisord restarting {name}")
        back = time.monotonic()
        wait_for(lambda: len([o for o in load.outcomes if o.at > back]) >= 30, 30, "requests after the restart")

    assert len(load.outcomes) >= 50
    assert len(load.failures()) <= HANDFUL, Counter(o.status for o in load.failures())
    assert not load.failures(after=back), "requests still failed once the replica was back"
    retried = [o for o in load.outcomes if o.status == 200 and o.attempts > 1]
    assert retried, "no request was retried: did any reach the dead replica?"

    spans = retried_trace(ZipkinClient(mesh.layout.trace_proxy_url), retried[0].request_id)
    assert all(s["tags"][REQUEST_ID_TAG] == retried[0].request_id for s in spans)
    (root,) = [s for s in spans if not s.get("parentId")]
    # The front span says the request took more than one try and still succeeded ...
    assert root["tags"][ATTEMPT_TAG] == str(retried[0].attempts) and root["tags"]["http.status_code"] == "200"
    # ... and the service1 replica that served it shows which try it was.
    tries = {int(s["tags"][ATTEMPT_TAG]): s for s in children(spans, root)}
    winner = tries[retried[0].attempts]
    assert winner["tags"]["http.status_code"] == "200" and service(winner) != replica
    # A try that reached the dying replica's sidecar is in the trace too, as its 503.
    for attempt, span in tries.items():
        if attempt < retried[0].attempts:
            assert service(span) == replica and span["tags"]["http.status_code"] == "503"


@pytest.mark.parametrize("parts", [("app",), ("envoy", "app")], ids=["app", "app-and-sidecar"])
def test_stopping_service2_answers_a_quick_clean_error_and_serving_resumes(mesh, parts):
    names = [f"service2-0-{part}" for part in parts]
    for name in names:
        mesh.stop_process(name)
    try:
        for _ in range(5):
            started = time.monotonic()
            reply = echo(mesh)
            took = time.monotonic() - started
            assert reply.status_code in (502, 503), reply.text
            assert took < 3.0 < FRONT_ROUTE_TIMEOUT, f"a failed request took {took:.1f} s"
            assert "Traceback" not in reply.text
    finally:
        for name in reversed(names):
            mesh.start_process(name)
    # Outlier detection may have set a replica aside meanwhile; the others serve at once.
    wait_for(lambda: echo(mesh).status_code == 200, 20, "service to resume")
    assert all(echo(mesh).status_code == 200 for _ in range(6))


def zipkin_stats(mesh: LocalMesh) -> Counter:
    """Envoy's counters of span reports and of connects to the trace proxy, over every Envoy."""
    total: Counter = Counter()
    for instance in mesh.layout.envoys:
        text = requests.get(f"http://{mesh.layout.host}:{instance.admin_port}/stats",
                            params={"filter": r"^(tracing\.zipkin\.|cluster\.trace_proxy\.upstream_cx_connect_fail$)"}, timeout=5).text
        for line in text.splitlines():
            key, _, value = line.partition(": ")
            total[key] += int(value)
    return total


def test_stopping_the_trace_proxy_fails_no_request_and_envoy_counts_the_lost_spans(mesh):
    client = ZipkinClient(mesh.layout.trace_proxy_url)
    before = zipkin_stats(mesh)
    mesh.stop_process(TRACE_PROXY_PROGRAM)
    try:
        replies = [echo(mesh) for _ in range(10)]
        assert [r.status_code for r in replies] == [200] * 10
        # Envoy flushes every 200 ms; a report it cannot deliver (its cluster answers 503
        # after the connect fails) is counted as dropped, the connect as failed.
        def lost() -> bool:
            now = zipkin_stats(mesh)
            return all(now[key] > before[key] for key in
                       ("tracing.zipkin.reports_dropped", "cluster.trace_proxy.upstream_cx_connect_fail"))
        wait_for(lost, 10, "Envoy counting the reports it could not deliver")
    finally:
        mesh.start_process(TRACE_PROXY_PROGRAM)
    wait_for(lambda: process(mesh, TRACE_PROXY_PROGRAM).healthy, 20, "the trace proxy to come back")
    after = zipkin_stats(mesh)
    assert after["tracing.zipkin.spans_sent"] - before["tracing.zipkin.spans_sent"] >= 10 * 12

    reply = echo(mesh, "after-the-outage")
    assert reply.status_code == 200
    spans = find_trace(client, reply.headers["x-request-id"])
    assert_echo_trace(spans, reply.headers["x-request-id"], "front-envoy", "service1-", "service2-")
    # The reports Envoy flushed during the outage are gone (spans still in its buffer when
    # the proxy came back may arrive later), so the outage's traces are not all whole.
    arrived = [len(find_trace(client, r.headers["x-request-id"], spans=1, timeout=0)) for r in replies]
    assert sum(arrived) < 10 * 12, arrived


@pytest.mark.soak
def test_soak_repeated_replica_kills_under_load_fail_almost_nothing(mesh, request):
    """Three minutes of load with a service1 replica killed every ten seconds."""
    if "soak" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("a soak run: opt in with -m soak")
    deadline = time.monotonic() + 180
    kills = 0
    with Load(mesh.layout.front_url, workers=6) as load:
        while time.monotonic() < deadline:
            replica = f"service1-{kills % mesh.layout.replicas}"
            part = sorted(KILLS)[kills % 2]
            name = f"{replica}-{part}"
            victim = process(mesh, name).pid
            wait_for(lambda: in_flight(mesh, replica), 10, f"a request in flight at {replica}")
            KILLS[part](victim)
            kills += 1
            wait_for(lambda: restarted(mesh, name, victim), 30, f"supervisord restarting {name}")
            time.sleep(10)
    assert kills >= 10
    # Measured: 36 of 8309 failed (503 UO,UF: the retry budget's floor of 3 concurrent retries
    # overflowed when a pod died) until the Envoy configs raised the floor to 10; since then
    # 0 of 3762 in a 70 s run. A handful over the whole soak is the bar.
    assert len(load.failures()) <= HANDFUL, Counter(o.status for o in load.failures())
