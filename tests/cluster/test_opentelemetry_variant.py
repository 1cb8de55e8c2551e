"""manifests/opentelemetry: the default stack with generated OpenTelemetry Envoy configs.

The generated files must equal what meshtools.cluster.opentelemetry_variant renders from
manifests/base/envoy/ now, and the variant must differ from the default stack only in those
ConfigMaps (and the names that point at them). Strict schema validation and checkov run
over it in test_manifests.py and test_manifest_security.py, like the other variants.
"""
from __future__ import annotations

import os
import subprocess

import pytest
import yaml

from meshtools.cluster import opentelemetry_variant as variant
from meshtools.shared import tracers
from meshtools.shared.topology import ENVOY_CONFIG_DIR, ENVOY_CONFIG_FILES, MANIFESTS_DIR
from tests.cluster.test_manifests import container, kustomize


@pytest.fixture(scope="module")
def base() -> list[dict]:
    return kustomize(MANIFESTS_DIR)


@pytest.fixture(scope="module")
def otel() -> list[dict]:
    return kustomize(variant.VARIANT_DIR)


def test_the_generated_configs_are_up_to_date():
    assert not variant.stale(), f"run `{variant.COMMAND}`: {[str(p) for p in variant.stale()]} are out of date"


@pytest.mark.parametrize("service", sorted(ENVOY_CONFIG_FILES))
def test_each_generated_config_is_its_base_config_with_the_opentelemetry_tracer(service):
    generated = yaml.safe_load(variant.path(service).read_text())
    source = yaml.safe_load((ENVOY_CONFIG_DIR / ENVOY_CONFIG_FILES[service]).read_text())
    assert generated == tracers.with_tracer(source, tracers.OPENTELEMETRY)


def test_a_stale_generated_file_is_found(tmp_path, monkeypatch):
    copy_dir = tmp_path / "envoy"
    copy_dir.mkdir()
    for service in ENVOY_CONFIG_FILES:
        (copy_dir / ENVOY_CONFIG_FILES[service]).write_text(variant.render(service))
    monkeypatch.setattr(variant, "CONFIG_DIR", copy_dir)
    assert variant.stale() == []
    edited = copy_dir / ENVOY_CONFIG_FILES["service2"]
    edited.write_text(edited.read_text().replace("timeout: 1s", "timeout: 2s"))
    assert variant.stale() == [edited]


def _configmap_names(objects) -> dict[str, str]:
    return {o["metadata"]["name"].rsplit("-", 1)[0]: o["metadata"]["name"] for o in objects if o["kind"] == "ConfigMap"}


def test_only_the_envoy_configmaps_differ_from_the_default_stack(base, otel):
    names = {stem: (_configmap_names(base)[stem], name) for stem, name in _configmap_names(otel).items()}
    assert len(names) == 3 and all(old != new for old, new in names.values()), "changed configs get new names (pods roll)"

    def normalised(objects):
        text = yaml.safe_dump([o for o in objects if o["kind"] != "ConfigMap"])
        for old, new in names.values():
            text = text.replace(new, old)
        return yaml.safe_load(text)

    assert normalised(otel) == normalised(base)
    for service in ENVOY_CONFIG_FILES:
        (configmap,) = [o for o in otel if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith(f"{service}-")]
        assert configmap["data"] == {"envoy.yaml": variant.path(service).read_text()}


@pytest.mark.parametrize("service", sorted(ENVOY_CONFIG_FILES))
def test_envoy_accepts_each_opentelemetry_configmap_with_the_containers_own_arguments(otel, service, tmp_path):
    (configmap,) = [o for o in otel if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith(f"{service}-")]
    rendered = tmp_path / "envoy.yaml"
    rendered.write_text(configmap["data"]["envoy.yaml"])
    envoy = container(otel, service, "envoy")
    pod = f"{service}-5d8f-x7k2p"
    argv = [str(rendered) if a == "/etc/envoy/envoy.yaml" else a.replace("$(POD_NAME)", pod)
            for a in envoy["command"] + envoy["args"]]
    env = {e["name"]: e["value"].replace("$(POD_NAME)", pod) for e in envoy["env"] if "value" in e}
    assert env[tracers.RESOURCE_ENV] == f"service.name={pod}", "each Envoy names its OpenTelemetry service by its pod"
    result = subprocess.run([*argv, "--mode", "validate"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, **env})
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_trace_proxy_service_exposes_zipkin_and_otlp_ports(otel):
    from trace_proxy.settings import OTLP_HTTP_PORT, ZIPKIN_PORT

    (service,) = [o for o in otel if o["kind"] == "Service" and o["metadata"]["name"] == "trace-proxy"]
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"zipkin": ZIPKIN_PORT, "otlp-http": OTLP_HTTP_PORT}
    proxy = container(otel, "trace-proxy", "trace-proxy")
    assert {p["name"]: p["containerPort"] for p in proxy["ports"]} == {"zipkin": ZIPKIN_PORT, "otlp-http": OTLP_HTTP_PORT}
    args = proxy["args"]
    assert args[args.index("--otlp-port") + 1] == str(OTLP_HTTP_PORT)
