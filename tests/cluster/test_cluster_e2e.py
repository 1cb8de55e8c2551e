"""What only a real kind cluster shows: changes reach it through `inv build deploy`.

Opt-in (`pytest -m cluster`; skipped with the reason otherwise, or when Docker or kind is
missing). The shared end-to-end tests, including "span service names are pod names" and
"requests spread over the three service1 pods", run here too from test_e2e.py. Each change
is made in a temporary copy of the repository and deployed from there; the repository is
never edited, and the original is deployed again afterwards.
"""
from __future__ import annotations

import pytest

from meshtools.views.front import echo
from meshtools.shared.topology import ENVOY_CONFIG_DIR, ENVOY_CONFIG_FILES, PROJECT_ROOT, SERVICE1, SERVICE2
from meshtools.views.trace_lookup import find_trace
from meshtools.views.zipkin_client import ZipkinClient
from tests.support.cluster_stack import copy_tree
from tests.support.trace_assertions import assert_echo_trace, assert_error_trace, assert_spans_come_from, service

pytestmark = pytest.mark.cluster

CHANGED_OPERATION = "stage-changed-by-e2e"
CODE_MARKER = "rebuilt by the cluster e2e test"


def edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path} no longer contains {old!r}: update this test"
    path.write_text(text.replace(old, new))


def test_a_changed_envoy_config_rolls_the_pods_and_they_run_it(cluster_stack, tmp_path):
    tree = copy_tree(tmp_path / "tree")
    config = tree / ENVOY_CONFIG_DIR.relative_to(PROJECT_ROOT) / ENVOY_CONFIG_FILES[SERVICE2]
    edit(config, "decorator: { operation: stage }", f"decorator: {{ operation: {CHANGED_OPERATION} }}")
    before = cluster_stack.pods(SERVICE2)
    try:
        cluster_stack.deploy(tree)

        after = cluster_stack.pods(SERVICE2)
        assert after and not after & before, f"service2 pods were not replaced: {before} → {after}"
        reply = echo(cluster_stack.front_url, "rolled")
        spans = find_trace(ZipkinClient(cluster_stack.trace_proxy_url), reply.request_id)
        assert_echo_trace(spans, reply.request_id, front="front-envoy", service1="service1-", service2="service2-")
        assert {s["name"] for s in spans if service(s) in after} == {CHANGED_OPERATION}
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
