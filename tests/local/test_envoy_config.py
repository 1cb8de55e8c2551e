"""The Envoy configs under manifests/: valid for the real binary in both forms, one source."""
from __future__ import annotations

import copy

import pytest

from meshtools.local import envoy_config
from meshtools.shared.topology import ENVOY_CONFIG_FILES, SERVICE1, SERVICE2, LocalLayout
from trace_proxy.server import KEEPALIVE_SECONDS

LAYOUT = LocalLayout(replicas=3)


@pytest.mark.parametrize("service", sorted(ENVOY_CONFIG_FILES))
def test_cluster_form_passes_envoy_validate(service):
    ok, said = envoy_config.validate(envoy_config.source_path(service))
    assert ok, said


@pytest.mark.parametrize("instance", LAYOUT.envoys, ids=lambda i: i.name)
def test_every_local_form_passes_envoy_validate(instance, tmp_path):
    ok, said = envoy_config.validate(envoy_config.write_local(instance, LAYOUT, tmp_path))
    assert ok, said


def _without_addresses(config: dict) -> dict:
    config = copy.deepcopy(config)
    for listener in config["static_resources"]["listeners"]:
        del listener["address"]
    for cluster in config["static_resources"]["clusters"]:
        del cluster["type"], cluster["load_assignment"]["endpoints"]
    del config["admin"]["address"]
    return config


@pytest.mark.parametrize("instance", LAYOUT.envoys, ids=lambda i: i.name)
def test_local_form_changes_only_addresses(instance):
    source = envoy_config.load(instance.service)
    local = envoy_config.render_local(instance, LAYOUT)
    assert _without_addresses(local) == _without_addresses(source)


def test_local_forms_listen_only_on_loopback_and_never_share_a_port():
    bound = []
    for instance in LAYOUT.envoys:
        config = envoy_config.render_local(instance, LAYOUT)
        addresses = [l["address"]["socket_address"] for l in config["static_resources"]["listeners"]]
        addresses.append(config["admin"]["address"]["socket_address"])
        assert {a["address"] for a in addresses} == {"127.0.0.1"}
        bound += [a["port_value"] for a in addresses]
    assert len(bound) == len(set(bound))


def test_front_envoy_balances_over_every_local_service1_replica():
    config = envoy_config.render_local(LAYOUT.front, LAYOUT)
    (service1,) = [c for c in config["static_resources"]["clusters"] if c["name"] == "service1"]
    ports = [e["endpoint"]["address"]["socket_address"]["port_value"]
             for e in service1["load_assignment"]["endpoints"][0]["lb_endpoints"]]
    assert ports == [i.ingress_port for i in LAYOUT.service1]


@pytest.mark.parametrize("service", sorted(ENVOY_CONFIG_FILES))
def test_configs_follow_the_tracing_contract(service):
    """DESIGN.md: Zipkin v2 JSON to /api/v2/spans, separate client/server spans, admin on loopback."""
    config = envoy_config.load(service)
    assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    for listener in config["static_resources"]["listeners"]:
        hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
        zipkin = hcm["tracing"]["provider"]
        assert zipkin["name"] == "envoy.tracers.zipkin"
        assert zipkin["typed_config"]["collector_endpoint"] == "/api/v2/spans"
        assert zipkin["typed_config"]["collector_endpoint_version"] == "HTTP_JSON"
        assert zipkin["typed_config"]["shared_span_context"] is False
        for host in hcm["route_config"]["virtual_hosts"]:
            for route in host["routes"]:
                assert route["decorator"]["operation"], "every route names its span"
                assert route["route"]["timeout"], "every route has a timeout"
    runtime = config["layered_runtime"]["layers"][0]["static_layer"]
    assert runtime["tracing.zipkin.flush_interval_ms"] <= 1000


def test_missing_envoy_binary_is_one_clear_sentence(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(envoy_config.EnvoyMissing, match="envoy is not on PATH"):
        envoy_config.envoy_binary()


ACCESS_LOG_FIELDS = {"time", "method", "path", "status", "response_flags", "upstream_host", "duration_ms",
                     "request_id", "trace_id"}


@pytest.mark.parametrize("service", sorted(ENVOY_CONFIG_FILES))
def test_every_listener_writes_a_json_access_log_that_joins_its_trace(service):
    # Envoy ran with no access log: nothing tied a request's hops to its trace.
    config = envoy_config.load(service)
    for listener in config["static_resources"]["listeners"]:
        (manager,) = [f["typed_config"] for chain in listener["filter_chains"] for f in chain["filters"]]
        (log,) = manager["access_log"]
        assert log["typed_config"]["@type"].endswith("StdoutAccessLog"), listener["name"]
        fields = log["typed_config"]["log_format"]["json_format"]
        assert ACCESS_LOG_FIELDS <= set(fields)
        assert fields["request_id"] == "%REQ(X-REQUEST-ID)%" and fields["trace_id"] == "%TRACE_ID%"


@pytest.mark.parametrize("service", sorted(ENVOY_CONFIG_FILES))
def test_envoy_closes_idle_connections_to_the_trace_proxy_before_the_proxy_does(service):
    """A span flush that crossed the proxy's close of an idle connection came back as Envoy's own
    503, and its spans were dropped (tracing.zipkin.reports_dropped): Envoy must close first."""
    config = envoy_config.load(service)
    (cluster,) = [c for c in config["static_resources"]["clusters"] if c["name"] == "trace_proxy"]
    options = cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    idle = options["common_http_protocol_options"]["idle_timeout"]
    assert idle.endswith("s") and 0 < float(idle[:-1]) < KEEPALIVE_SECONDS


@pytest.mark.parametrize("service", [SERVICE1, SERVICE2])
def test_a_sidecar_closes_idle_connections_to_its_app_within_a_second(service):
    """A retired app worker (gunicorn's graceful reload, `inv dev`) exits once its kept-alive
    connections close: the sidecar closes idle ones first, so old code stops answering promptly."""
    config = envoy_config.load(service)
    (cluster,) = [c for c in config["static_resources"]["clusters"] if c["name"] == envoy_config.LOCAL_APP]
    options = cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    idle = options["common_http_protocol_options"]["idle_timeout"]
    assert idle.endswith("s") and 0 < float(idle[:-1]) <= 1
