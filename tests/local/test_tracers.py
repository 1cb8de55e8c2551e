"""The OpenTelemetry Envoy configs: derived from the Zipkin ones, different only in the
tracing provider, and accepted by the real Envoy in every form."""
from __future__ import annotations

import copy

import pytest

from meshtools.local import envoy_config
from meshtools.shared import tracers
from meshtools.shared.topology import ENVOY_CONFIG_FILES, LocalLayout

LAYOUT = LocalLayout(replicas=2)


def _providers(config: dict) -> list[dict]:
    return [hcm["tracing"]["provider"] for hcm in tracers.connection_managers(config)]


def _without_providers(config: dict) -> dict:
    config = copy.deepcopy(config)
    for hcm in tracers.connection_managers(config):
        del hcm["tracing"]["provider"]
    return config


@pytest.mark.parametrize("service", sorted(ENVOY_CONFIG_FILES))
def test_the_opentelemetry_form_differs_only_in_the_tracing_provider(service):
    zipkin = envoy_config.load(service)
    otel = tracers.with_tracer(zipkin, tracers.OPENTELEMETRY)
    assert _without_providers(otel) == _without_providers(zipkin)
    assert tracers.with_tracer(zipkin, tracers.ZIPKIN) == zipkin
    pairs = list(zip(_providers(zipkin), _providers(otel)))
    assert pairs and len(pairs) == len(list(tracers.connection_managers(zipkin)))
    for before, after in pairs:
        assert before["name"] == tracers.ZIPKIN_PROVIDER and after["name"] == tracers.OPENTELEMETRY_PROVIDER
        uri = after["typed_config"]["http_service"]["http_uri"]
        # The same collector cluster as Zipkin's: only the path (OTLP/HTTP's /v1/traces) changes.
        assert uri["cluster"] == before["typed_config"]["collector_cluster"]
        assert uri["uri"].endswith(tracers.OTLP_TRACES_PATH)


@pytest.mark.parametrize("service", sorted(ENVOY_CONFIG_FILES))
def test_both_tracers_flush_within_a_second(service):
    runtime = envoy_config.load(service)["layered_runtime"]["layers"][0]["static_layer"]
    for tracer in tracers.TRACERS:
        assert runtime[f"tracing.{tracer}.flush_interval_ms"] <= 1000
        assert runtime[f"tracing.{tracer}.min_flush_spans"] <= 5


@pytest.mark.parametrize("instance", LAYOUT.envoys, ids=lambda i: i.name)
def test_every_local_opentelemetry_form_passes_envoy_validate(instance, tmp_path):
    path = envoy_config.write_local(instance, LAYOUT, tmp_path, tracer=tracers.OPENTELEMETRY)
    ok, said = envoy_config.validate(path)
    assert ok, said
    assert "envoy.tracers.opentelemetry" in path.read_text()


def test_an_unknown_tracer_is_refused_with_the_choices():
    with pytest.raises(tracers.UnknownTracer, match="zipkin or opentelemetry"):
        tracers.with_tracer(envoy_config.load("front-envoy"), "jaeger")
