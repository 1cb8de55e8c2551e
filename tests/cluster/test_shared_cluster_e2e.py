"""A shared cluster for real: a second kind cluster stands in for a team's, with its own registry.

`inv up --context kind-team --namespace N --registry 127.0.0.1:PORT` pushes the service image to
Debian's docker-registry, the team cluster's containerd pulls it from there (never `kind load`),
the stack answers through the forwarded ports (OTLP's too), and `inv down` removes what it
labelled and the namespace it created, nothing else. The context guard refuses the team's
context until it is allowed. tests/support/team_cluster.py makes the cluster and registry.
"""
from __future__ import annotations

import json
import secrets
import time

import pytest
import requests

from meshtools.cluster import image, kind
from meshtools.shared.topology import FRONT, LOOPBACK, SERVICE1, SERVICE2
from meshtools.views.front import echo_url
from meshtools.views.trace_lookup import SPANS_PER_ECHO, find_trace
from meshtools.views.zipkin_client import ZipkinClient
from tests.support.cluster_stack import steady_port
from tests.support.inv_process import run_inv
from tests.support.team_cluster import TeamStack, team_cluster
from tests.support.trace_assertions import assert_echo_trace, assert_spans_come_from

pytestmark = pytest.mark.cluster

NAME = "team"  # its context is kind-team
NAMESPACE = "tracing-team"
SOMEONE_ELSES = "payments"  # a namespace of the team's own, which `inv down` must not touch
INV_TIMEOUT = 1200


@pytest.fixture(scope="module")
def team(docker_base_image):
    yield from team_cluster(NAME, docker_base_image.ref)


@pytest.fixture(scope="module")
def team_stack(team, tmp_path_factory):
    stack = TeamStack(NAME, tmp_path_factory.mktemp("team-state"), steady_port(), steady_port(), steady_port(),
                      context=team.context, namespace=NAMESPACE, registry=team.registry,
                      base_image=team.base_image)
    someone = team.kubectl(SOMEONE_ELSES)
    someone.run("create", "namespace", SOMEONE_ELSES, capture=True)
    someone.run("create", "configmap", "ledger", "--from-literal=balance=42", capture=True)
    stack.inv("up", *stack.target_flags(), "--registry", team.registry, *stack.forward_ports())
    stack.settle()
    yield stack
    stack.inv("down", *stack.target_flags())  # again after the down test: says there is nothing


def test_the_guard_refuses_the_teams_context_until_it_is_allowed(team, tmp_path):
    result = run_inv("up", "--context", team.context, "--namespace", NAMESPACE, "--registry", team.registry,
                     env={"ENVOY_TRACING_STATE_DIR": str(tmp_path)}, timeout=120)

    assert result.returncode != 0
    assert "allowed_contexts" in result.stdout + result.stderr
    assert not team.kubectl().exists("namespace", NAMESPACE)
    assert team.tags(image.IMAGE_NAME) == []


def test_inv_up_pushes_the_image_and_the_team_cluster_pulls_it_from_the_registry(team, team_stack):
    pods = json.loads(team_stack.kubectl.run("get", "pods", "--output", "json", capture=True).stdout)["items"]
    (ref,) = {c["image"] for p in pods for c in p["spec"]["containers"]
              if p["metadata"]["labels"].get("app") in (SERVICE1, SERVICE2) and c["name"] == "app"}

    assert ref.startswith(f"{team.registry}/{image.IMAGE_NAME}:")
    assert ref.rsplit(":", 1)[1] in team.tags(image.IMAGE_NAME)
    assert f"{team.registry}/{image.IMAGE_NAME}" in team.node_images()  # pulled, not `kind load`ed
    default = team.kubectl("default").run("get", "pods", "--output", "name", capture=True).stdout
    assert not default.strip(), f"the stack leaked into the default namespace: {default}"


def test_a_traced_request_on_the_team_cluster_comes_back_as_the_12_span_trace(team_stack):
    reply = requests.get(echo_url(team_stack.front_url, "friend"), timeout=30)

    assert reply.ok, reply.text
    request_id = reply.headers["x-request-id"]
    spans = find_trace(ZipkinClient(team_stack.trace_proxy_url), request_id)
    assert len(spans) == SPANS_PER_ECHO
    instances = team_stack.instances()
    assert_echo_trace(spans, request_id, FRONT, SERVICE1, SERVICE2)
    assert_spans_come_from(spans, instances)


def test_the_trace_proxys_otlp_port_is_forwarded_too(team_stack):
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    body = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "laptop-sdk"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": trace_id, "spanId": span_id, "name": "checkout", "kind": 2,
            "startTimeUnixNano": str(time.time_ns() - 5_000_000), "endTimeUnixNano": str(time.time_ns()),
        }]}],
    }]}

    reply = requests.post(f"http://{LOOPBACK}:{team_stack.otlp_port}/v1/traces", json=body, timeout=10)

    assert reply.status_code == 200, reply.text
    stored = requests.get(f"{team_stack.trace_proxy_url}/api/v2/trace/{trace_id}", timeout=10)
    assert stored.status_code == 200, stored.text
    (span,) = stored.json()
    assert (span["id"], span["name"], span["localEndpoint"]["serviceName"]) == (span_id, "checkout", "laptop-sdk")


def test_inv_down_removes_the_stack_and_the_namespace_it_created_and_nothing_else(team, team_stack):
    ports = (team_stack.front_port, team_stack.trace_proxy_port, team_stack.otlp_port)

    output = team_stack.inv_output("down", *team_stack.target_flags())

    assert f"Deleted namespace {NAMESPACE}" in output
    assert not team.kubectl().exists("namespace", NAMESPACE)
    assert team.kubectl(SOMEONE_ELSES).exists("configmap", "ledger")  # the team's own things stay
    assert kind.exists(NAME)  # a shared cluster is never deleted
    assert not any(_answers(port) for port in ports)


def _answers(port: int) -> bool:
    try:
        requests.get(f"http://{LOOPBACK}:{port}/", timeout=2)
        return True
    except requests.ConnectionError:
        return False
