"""The end-to-end tests every target must pass: one set of test code, two targets.

`local` is the mesh on loopback (always run); `cluster` is the stack on a real kind cluster
behind its port-forwards, marked `cluster` (run whenever a kind cluster can be made, see
docs/cluster-e2e.md). Target-specific checks live in test_local_e2e.py and test_cluster_e2e.py.
"""
from __future__ import annotations

import pytest
import requests

from meshtools.views.front import echo
from meshtools.shared.topology import SERVICE1
from meshtools.views.trace_lookup import find_trace
from meshtools.views.zipkin_client import ZipkinClient
from tests.support.e2e_targets import Target, local_target, serving_pod
from tests.support.trace_assertions import assert_echo_trace, assert_error_trace, assert_spans_come_from


@pytest.fixture(params=["local", pytest.param("cluster", marks=pytest.mark.cluster)])
def target(request) -> Target:
    if request.param == "local":
        return local_target(request.getfixturevalue("local_mesh"))
    return request.getfixturevalue("cluster_stack").target()


def test_echo_friend_makes_one_whole_twelve_span_trace_named_after_the_running_instances(target):
    reply = echo(target.front_url, "friend")
    assert reply.status == 200 and "Hello friend!" in reply.body
    spans = find_trace(ZipkinClient(target.trace_proxy_url), reply.request_id)
    assert_echo_trace(spans, reply.request_id, front="front-envoy", service1="service1-", service2="service2-")
    # On the cluster: span service names are the pod names kubectl lists.
    assert_spans_come_from(spans, target.instances())


def test_chris_answers_500_through_the_mesh_and_the_trace_says_so(target):
    reply = echo(target.front_url, "chris")
    assert reply.status == 500
    spans = find_trace(ZipkinClient(target.trace_proxy_url), reply.request_id, spans=2)
    assert_error_trace(spans, reply.request_id, status=500)


def test_markup_in_a_name_comes_back_escaped(target):
    reply = echo(target.front_url, "<script>alert('x')</script>")
    assert reply.status == 200
    assert "<script>" not in reply.body and "&lt;script&gt;" in reply.body


def test_front_envoy_balances_requests_over_every_service1_replica(target):
    replicas = target.instances()[SERVICE1]
    pods = set()
    # Envoy's round robin starts each worker at its own offset and spreads unevenly over a
    # few requests; ten rounds make missing a replica by chance practically impossible.
    with requests.Session() as session:
        for _ in range(10 * len(replicas)):
            pods.add(serving_pod(echo(target.front_url, "spread", session=session).body))
            if pods == replicas:
                break
    assert pods == replicas
