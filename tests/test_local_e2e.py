"""The local target end to end: real Envoy, real services, real trace proxy, on loopback."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import requests

from meshtools.front import echo
from meshtools.trace_lookup import find_trace
from meshtools.zipkin_client import ZipkinClient
from tests.trace_assertions import assert_echo_trace, assert_error_trace


def test_echo_friend_makes_one_whole_twelve_span_trace(local_mesh):
    reply = echo(local_mesh.layout.front_url, "friend")
    assert reply.status == 200 and "Hello friend!" in reply.body
    spans = find_trace(ZipkinClient(local_mesh.layout.trace_proxy_url), reply.request_id)
    assert_echo_trace(spans, reply.request_id, front="front-envoy", service1="service1-", service2="service2-")


def test_chris_answers_500_through_the_mesh_and_the_trace_says_so(local_mesh):
    reply = echo(local_mesh.layout.front_url, "chris")
    assert reply.status == 500
    spans = find_trace(ZipkinClient(local_mesh.layout.trace_proxy_url), reply.request_id, spans=2)
    assert_error_trace(spans, reply.request_id, status=500)


def test_markup_in_a_name_comes_back_escaped(local_mesh):
    reply = echo(local_mesh.layout.front_url, "<script>alert('x')</script>")
    assert reply.status == 200
    assert "<script>" not in reply.body and "&lt;script&gt;" in reply.body


def test_front_envoy_balances_requests_over_every_service1_replica(local_mesh):
    pods = set()
    with requests.Session() as session:
        for _ in range(3 * local_mesh.layout.replicas):
            pods.add(echo(local_mesh.layout.front_url, "spread", session=session).body.rsplit("pod: ", 1)[1].split("<")[0])
    assert pods == {i.name for i in local_mesh.layout.service1}


def test_a_process_that_dies_is_restarted_by_the_supervisor(local_mesh):
    before = {p.name: p.pid for p in local_mesh.status()}
    os.kill(before["service2-0-app"], 9)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = {p.name: p for p in local_mesh.status()}["service2-0-app"]
        if now.state == "RUNNING" and now.pid != before["service2-0-app"] and now.healthy:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"service2-0-app was not restarted: {now}")
    assert echo(local_mesh.layout.front_url, "again").status == 200
