"""manifests/opentelemetry/envoy/*.yaml: the cluster's OpenTelemetry Envoy configs, generated.

kustomize cannot rewrite a file inside a ConfigMap, so the variant carries its own copies of
the three Envoy configs, derived from manifests/base/envoy/ by meshtools.shared.tracers (only
the tracing provider changes). They are generated, never edited by hand:

    python -m meshtools.cluster.opentelemetry_variant

rewrites them, and tests/cluster/test_opentelemetry_variant.py fails when they differ from
what this renders now (after an edit of a base config without rerunning it).
"""
from __future__ import annotations

import sys
from pathlib import Path

import yaml

from meshtools.shared.topology import ENVOY_CONFIG_DIR, ENVOY_CONFIG_FILES, MANIFESTS_DIR, PROJECT_ROOT
from meshtools.shared.tracers import OPENTELEMETRY, with_tracer

VARIANT_DIR = MANIFESTS_DIR / "opentelemetry"
CONFIG_DIR = VARIANT_DIR / "envoy"
COMMAND = "python -m meshtools.cluster.opentelemetry_variant"


def render(service: str) -> str:
    source = ENVOY_CONFIG_DIR / ENVOY_CONFIG_FILES[service]
    config = with_tracer(yaml.safe_load(source.read_text()), OPENTELEMETRY)
    header = (f"# Generated from {source.relative_to(PROJECT_ROOT)} by `{COMMAND}`: only the tracing\n"
              "# provider differs (envoy.tracers.opentelemetry, OTLP/HTTP to the trace proxy). Do not edit.\n")
    return header + yaml.safe_dump(config, sort_keys=False)


def path(service: str) -> Path:
    return CONFIG_DIR / ENVOY_CONFIG_FILES[service]


def stale() -> list[Path]:
    """The generated files that are missing or differ from a rendering now."""
    return [path(s) for s in ENVOY_CONFIG_FILES if not path(s).exists() or path(s).read_text() != render(s)]


def write() -> list[Path]:
    CONFIG_DIR.mkdir(parents=True, exist_ok=True)
    written = stale()
    for service in ENVOY_CONFIG_FILES:
        path(service).write_text(render(service))
    return written


def main() -> int:
    written = write()
    for file in written:
        print(f"wrote {file.relative_to(PROJECT_ROOT)}")
    if not written:
        print(f"{CONFIG_DIR.relative_to(PROJECT_ROOT)}/ is up to date.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
