"""What only a real kind cluster shows: changes reach it through `inv build deploy`, a key typed
at `inv secret` reaches Honeycomb, the variants, the logs, the offline cluster's closed DNS.

Run whenever Docker, kind and kubectl are there (skipped with the reason otherwise); CI runs
them on a cluster made from `inv cluster.images`. The shared end-to-end tests, including "span service names are pod names" and
"requests spread over the three service1 pods", run here too from test_e2e.py. Each change
is made in a temporary copy of the repository and deployed from there; the repository is
never edited, and the original is deployed again afterwards.
"""
from __future__ import annotations

import json
import os
import time
import uuid

import pytest
import requests

from meshtools.cluster import secret as secrets
from meshtools.cluster import live
from meshtools.cluster import target as cluster_target
from meshtools.cluster.kubectl import Kubectl
from meshtools.cluster.live import LiveUpdate
from meshtools.views.front import echo
from meshtools.shared.topology import (ENVOY_CONFIG_DIR, ENVOY_CONFIG_FILES, FRONT, LOOPBACK, PROJECT_ROOT, SERVICE1,
                                       SERVICE2)
from meshtools.views.trace_lookup import find_trace
from meshtools.views.zipkin_client import ZipkinClient
from tests.support.cluster_stack import OFFLINE_ENV, copy_tree, inv_at_a_terminal, steady_port
from tests.support.cluster_standin import honeycomb_in_cluster, kept
from tests.support.trace_assertions import assert_echo_trace, assert_error_trace, assert_spans_come_from

pytestmark = pytest.mark.cluster

CHANGED_OPERATION = "stage-changed-by-e2e"
CODE_MARKER = "rebuilt by the cluster e2e test"


def edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path} no longer contains {old!r}: update this test"
    path.write_text(text.replace(old, new))


def test_a_changed_envoy_config_rolls_the_pods_and_they_run_it(cluster_stack, tmp_path):
    """service1's egress routes name the stage calls; Envoy propagates that operation name
    (x-envoy-decorator-operation), so service2's server spans carry it too."""
    tree = copy_tree(tmp_path / "tree")
    config = tree / ENVOY_CONFIG_DIR.relative_to(PROJECT_ROOT) / ENVOY_CONFIG_FILES[SERVICE1]
    edit(config, "decorator: { operation: stage }", f"decorator: {{ operation: {CHANGED_OPERATION} }}")
    before = cluster_stack.pods(SERVICE1)
    try:
        cluster_stack.deploy(tree)

        after = cluster_stack.pods(SERVICE1)
        assert after and not after & before, f"service1 pods were not replaced: {before} → {after}"
        reply = echo(cluster_stack.front_url, "rolled")
        spans = find_trace(ZipkinClient(cluster_stack.trace_proxy_url), reply.request_id)
        assert_echo_trace(spans, reply.request_id, front="front-envoy", service1="service1-", service2="service2-")
        stage_calls = [s for s in spans if "/stage/" in s["tags"].get("http.url", "")]
        assert len(stage_calls) == 10 and {s["name"] for s in stage_calls} == {CHANGED_OPERATION}
    finally:
        cluster_stack.deploy(PROJECT_ROOT)


def test_inv_build_deploy_after_a_code_change_serves_the_new_code(cluster_stack, tmp_path):
    tree = copy_tree(tmp_path / "tree")
    edit(tree / "service" / "__init__.py", "Served by:", f"Served by ({CODE_MARKER}):")
    before = cluster_stack.pods(SERVICE1)
    try:
        cluster_stack.deploy(tree)

        after = cluster_stack.pods(SERVICE1)
        assert after and not after & before, f"service1 pods were not replaced: {before} → {after}"
        assert CODE_MARKER in echo(cluster_stack.front_url, "new-code").body
    finally:
        cluster_stack.deploy(PROJECT_ROOT)
    assert CODE_MARKER not in echo(cluster_stack.front_url, "old-code").body


def test_the_opentelemetry_tracer_makes_the_same_trace_on_the_cluster(cluster_stack):
    """`inv deploy --tracer opentelemetry`: every Envoy exports OTLP to the trace proxy; the trace
    has the Zipkin tracer's shape and names the pods, and chris still shows its error."""
    try:
        cluster_stack.deploy(PROJECT_ROOT, "--tracer", "opentelemetry")
        client = ZipkinClient(cluster_stack.trace_proxy_url)
        reply = echo(cluster_stack.front_url, "otel")
        spans = find_trace(client, reply.request_id)
        assert_echo_trace(spans, reply.request_id, front="front-envoy", service1="service1-", service2="service2-")
        assert_spans_come_from(spans, cluster_stack.instances())
        assert {s["tags"].get("otel.scope.name") for s in spans} == {"envoy"}, "the spans came as OTLP"
        failed = echo(cluster_stack.front_url, "chris")
        assert_error_trace(find_trace(client, failed.request_id, spans=2), failed.request_id, status=500)
    finally:
        cluster_stack.deploy(PROJECT_ROOT)


def test_a_key_typed_at_inv_secrets_prompt_sends_the_trace_to_honeycomb(cluster_stack, tmp_path):
    """`inv secret` at a terminal: the key typed at the hidden prompt reaches the trace proxy, which
    forwards every span of a request to Honeycomb (a stand-in in the cluster) under that key; the
    key is never echoed, printed, or written to a file of the repository or the state folder."""
    key = f"test-key-{uuid.uuid4().hex}"
    kubectl = cluster_stack.kubectl
    with honeycomb_in_cluster(kubectl, cluster_stack.image_ref()):
        try:
            seen = inv_at_a_terminal(cluster_stack, "secret", "--name", cluster_stack.name, answer=key,
                                     prompt="Honeycomb API key")
            cluster_stack.restore_forwards()
            reply = echo(cluster_stack.front_url, "honeycomb")
            spans = find_trace(ZipkinClient(cluster_stack.trace_proxy_url), reply.request_id)
            assert_echo_trace(spans, reply.request_id, front="front-envoy", service1="service1-", service2="service2-")
            trace_id = spans[0]["traceId"]
            deadline = time.monotonic() + 30
            while (sent := kept(kubectl, trace_id))["events"] < len(spans) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert sent == {"events": len(spans), "keys": [key]}
        finally:
            kubectl.run("delete", "secret", secrets.SECRET_NAME, "--ignore-not-found", capture=True)
    cluster_stack.restore_forwards()
    assert key not in seen, "the key was echoed or printed"
    for folder in (PROJECT_ROOT, cluster_stack.state):
        for path in folder.rglob("*"):
            if path.is_file() and ".git" not in path.parts and path.stat().st_size < 50_000_000:
                assert key.encode() not in path.read_bytes(), f"the key was written to {path}"


def test_the_zipkin_ui_variant_answers_with_zipkins_own_api_through_inv_forward(cluster_stack):
    """`inv deploy --variant zipkin-ui`: the trace proxy mirrors spans to the real Zipkin, whose own
    API (what its UI reads) serves the 12-span trace through the forward."""
    zipkin_port = steady_port()
    try:
        cluster_stack.deploy(PROJECT_ROOT, "--variant", "zipkin-ui", zipkin_ui_port=zipkin_port)
        reply = echo(cluster_stack.front_url, "zipkin")
        spans = find_trace(ZipkinClient(cluster_stack.trace_proxy_url), reply.request_id)
        trace_id = spans[0]["traceId"]
        zipkin = f"http://{LOOPBACK}:{zipkin_port}/zipkin"
        deadline = time.monotonic() + 60
        mirrored: list = []
        while len(mirrored) < len(spans) and time.monotonic() < deadline:
            answer = requests.get(f"{zipkin}/api/v2/trace/{trace_id}", timeout=10)
            mirrored = answer.json() if answer.ok else []
            time.sleep(0.5)
        assert_echo_trace(mirrored, reply.request_id, front="front-envoy", service1="service1-", service2="service2-")
        page = requests.get(f"{zipkin}/", timeout=10)
        assert page.ok and "<title>Zipkin</title>" in page.text
    finally:
        cluster_stack.deploy(PROJECT_ROOT)
    assert not cluster_stack.kubectl.exists("deployment", "zipkin"), "the default stack runs no Zipkin"


def test_inv_logs_cluster_request_shows_the_request_at_every_hop(cluster_stack):
    reply = echo(cluster_stack.front_url, "logs")
    find_trace(ZipkinClient(cluster_stack.trace_proxy_url), reply.request_id)
    deadline = time.monotonic() + 30
    while True:
        shown = cluster_stack.inv_output("logs", "--cluster", "--request", reply.request_id)
        pods = {line.split("]", 1)[0] for line in shown.splitlines() if reply.request_id in line}
        apps = {app for app in (FRONT, SERVICE1, SERVICE2) if any(f"/{app}-" in pod for pod in pods)}
        if apps == {FRONT, SERVICE1, SERVICE2} or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert apps == {FRONT, SERVICE1, SERVICE2}, shown


def test_nothing_in_the_offline_cluster_resolves_or_reaches_outside_it(cluster_stack):
    """From the offline node image, CoreDNS answers for the cluster's own names only."""
    if not os.environ.get(OFFLINE_ENV):
        pytest.skip(f"the cluster was not made from the offline node image ({OFFLINE_ENV} unset)")
    system = Kubectl(cluster_stack.name, namespace="kube-system")
    corefile = json.loads(system.run("get", "configmap", "coredns", "-o", "json", capture=True).stdout)["data"]
    assert "forward" not in corefile["Corefile"]
    resolve = ("import socket, sys\n"
               "for name in sys.argv[1:]:\n"
               "    try: print(name, socket.gethostbyname(name))\n"
               "    except OSError: print(name, 'unresolved')\n")
    shown = cluster_stack.kubectl.run("exec", "deployment/service1", "-c", "app", "--", "python", "-c", resolve,
                                      "service2", "pypi.org", capture=True).stdout
    assert "service2 unresolved" not in shown and "pypi.org unresolved" in shown, shown


def test_inv_dev_cluster_serves_a_code_change_without_a_build_or_a_pod_restart(cluster_stack, tmp_path):
    """The dev-mode stack (`inv deploy --dev`): a change under service/ is synced into the running
    pods and served by new gunicorn workers (same pods, no container restart, no image build); a
    dependency change is not synced but falls back to build + deploy."""
    tree = copy_tree(tmp_path / "tree")
    update = None
    try:
        cluster_stack.deploy(PROJECT_ROOT, "--dev")
        target = cluster_target.resolve(cluster_stack.name)
        kubectl = cluster_stack.kubectl
        before = {app: (cluster_stack.pods(app), live.restart_count(kubectl, app)) for app in (SERVICE1, SERVICE2)}
        image_before = cluster_stack.image_ref()
        fallbacks = []
        update = LiveUpdate(target, root=tree, fallback=lambda *args: fallbacks.append(args) or "built and deployed")
        update.prepare()  # exec sessions into the pods, as the watcher opens them

        edit(tree / "service" / "__init__.py", "Served by:", f"Served by ({CODE_MARKER}, live):")
        saved_at = time.time()
        lines = update.apply([tree / "service" / "__init__.py"], saved_at)
        served = None
        while served is None and time.time() - saved_at < 60:
            if f"{CODE_MARKER}, live" in echo(cluster_stack.front_url, "live").body:
                served = time.time() - saved_at
        assert served is not None, f"the change was not served within 60 s: {lines}"
        print(f"inv dev --cluster: save → served {served:.2f} s ({lines})")
        after = {app: (cluster_stack.pods(app), live.restart_count(kubectl, app)) for app in (SERVICE1, SERVICE2)}
        assert after == before, "a live update must not replace pods or restart containers"
        assert cluster_stack.image_ref() == image_before and not fallbacks, "no image build for a code change"

        lock = tree / "service.requirements.txt"
        lock.write_text(lock.read_text() + "\n# a dependency change\n")
        lines = update.apply([lock])
        assert len(fallbacks) == 1 and fallbacks[0][1] == [lock], fallbacks
        assert "no live update" in lines[0] and "built and deployed" in lines[0]
    finally:
        if update is not None:
            update.close()
        cluster_stack.deploy(PROJECT_ROOT)
