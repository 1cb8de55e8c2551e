"""The two tracers every Envoy can run: the seed's Zipkin one and OpenTelemetry's.

manifests/base/envoy/*.yaml (Zipkin) are the one source. The OpenTelemetry form of a config
is derived from it by swapping each connection manager's tracing provider for
`envoy.tracers.opentelemetry`, posting OTLP/HTTP protobuf to the trace proxy's /v1/traces
over the same `trace_proxy` cluster; nothing else changes (tests/local/test_tracers.py
proves it). Both targets use this: the local rendering, and the cluster's generated
manifests/opentelemetry/envoy/ files.
"""
from __future__ import annotations

import copy

ZIPKIN = "zipkin"
OPENTELEMETRY = "opentelemetry"
TRACERS = (ZIPKIN, OPENTELEMETRY)
DEFAULT_TRACER = ZIPKIN  # the seed's
OTLP_TRACES_PATH = "/v1/traces"
ZIPKIN_PROVIDER = "envoy.tracers.zipkin"
OPENTELEMETRY_PROVIDER = "envoy.tracers.opentelemetry"
# Envoy's OpenTelemetry tracer takes its service.name from the environment (its
# `environment` resource detector reads OTEL_RESOURCE_ATTRIBUTES), so each pod or local
# instance names itself as `--service-cluster` does for the Zipkin tracer.
RESOURCE_ENV = "OTEL_RESOURCE_ATTRIBUTES"
_ENV_DETECTOR = {
    "name": "envoy.tracers.opentelemetry.resource_detectors.environment",
    "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.tracers.opentelemetry.resource_detectors.v3."
                 "EnvironmentResourceDetectorConfig",
    },
}


class UnknownTracer(ValueError):
    pass


def check(tracer: str) -> str:
    if tracer not in TRACERS:
        raise UnknownTracer(f"unknown tracer {tracer!r}: choose {' or '.join(TRACERS)}")
    return tracer


def resource_env(service_name: str) -> dict[str, str]:
    """The environment that names an Envoy's OpenTelemetry resource (harmless for Zipkin)."""
    return {RESOURCE_ENV: f"service.name={service_name}"}


def _authority(config: dict, cluster: str) -> str:
    """host:port of the cluster's first endpoint: the Host header the collector is sent."""
    (found,) = [c for c in config["static_resources"]["clusters"] if c["name"] == cluster]
    address = found["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    return f"{address['address']}:{address['port_value']}"


def opentelemetry_provider(config: dict, zipkin: dict) -> dict:
    """The OpenTelemetry provider sending to the same cluster as a Zipkin provider of `config`."""
    cluster = zipkin["typed_config"]["collector_cluster"]
    return {
        "name": OPENTELEMETRY_PROVIDER,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig",
            "http_service": {
                "http_uri": {
                    # Envoy sends to `cluster`; the URI gives the path and the Host header.
                    "uri": f"http://{_authority(config, cluster)}{OTLP_TRACES_PATH}",
                    "cluster": cluster,
                    "timeout": "1s",
                },
            },
            "resource_detectors": [copy.deepcopy(_ENV_DETECTOR)],
        },
    }


def connection_managers(config: dict):
    """Every HTTP connection manager's typed_config in a config."""
    for listener in config["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            for network_filter in chain["filters"]:
                if network_filter["name"] == "envoy.filters.network.http_connection_manager":
                    yield network_filter["typed_config"]


def with_tracer(config: dict, tracer: str) -> dict:
    """`config` (a Zipkin config from manifests/base/envoy/) for `tracer`: a new dict."""
    config = copy.deepcopy(config)
    if check(tracer) == ZIPKIN:
        return config
    for hcm in connection_managers(config):
        provider = hcm.get("tracing", {}).get("provider")
        if provider and provider["name"] == ZIPKIN_PROVIDER:
            hcm["tracing"]["provider"] = opentelemetry_provider(config, provider)
    return config
