"""The OpenTelemetry Collector as the trace proxy's peer in bench/proxy_forwarding.py.

    python bench/collector_peer.py manifest [--output-path DIR] > manifest.yaml
    OTELCOL=DIR/otelcol-bench python bench/proxy_forwarding.py     (or `inv bench`)

What users run instead of the proxy today: the Collector with its zipkin receiver (Envoy's
spans), otlp receiver, batch processor and otlphttp exporter, posting to the Honeycomb
stand-in's OTLP endpoint as it would to Honeycomb's. It is built from Go modules only, by
the OpenTelemetry Collector Builder and the manifest this script prints (docs/benchmark.md
says how); neither the binary nor the generated sources are kept here.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

# The newest release the Go module proxy served here for every component below.
OTELCOL_VERSION = "v0.165.0"
CORE = "go.opentelemetry.io/collector"
CONTRIB = "github.com/open-telemetry/opentelemetry-collector-contrib"
COMPONENTS = {
    "receivers": [f"{CONTRIB}/receiver/zipkinreceiver", f"{CORE}/receiver/otlpreceiver"],
    "processors": [f"{CORE}/processor/batchprocessor"],
    "exporters": [f"{CORE}/exporter/otlphttpexporter"],
}
BINARY = "otelcol-bench"
KEY_VARIABLE = "HONEYCOMB_API_KEY"  # the key reaches the Collector's config from its environment only


def manifest(output_path: str) -> str:
    """The Collector Builder's manifest: these components, at OTELCOL_VERSION."""
    doc = {"dist": {"name": BINARY, "description": "OpenTelemetry Collector for envoy-tracing's benchmark",
                    "output_path": output_path}}
    for kind, modules in COMPONENTS.items():
        doc[kind] = [{"gomod": f"{module} {OTELCOL_VERSION}"} for module in modules]
    return yaml.safe_dump(doc, sort_keys=False, width=200)  # one line per module, as the builder's docs write it


def config(host: str, zipkin_port: int, otlp_port: int, honeycomb_url: str, dataset: str) -> str:
    """Zipkin and OTLP in, batched, out as OTLP/HTTP with Honeycomb's headers; the Collector's
    own telemetry off (its metrics would take port 8888)."""
    doc = {
        "receivers": {"zipkin": {"endpoint": f"{host}:{zipkin_port}"},
                      "otlp": {"protocols": {"http": {"endpoint": f"{host}:{otlp_port}"}}}},
        "processors": {"batch": {}},
        "exporters": {"otlphttp": {"endpoint": honeycomb_url,
                                   "headers": {"x-honeycomb-team": f"${{env:{KEY_VARIABLE}}}",
                                               "x-honeycomb-dataset": dataset}}},
        "service": {"telemetry": {"logs": {"level": "warn"}, "metrics": {"level": "none"}},
                    "pipelines": {"traces": {"receivers": ["zipkin", "otlp"], "processors": ["batch"],
                                             "exporters": ["otlphttp"]}}},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    printed = commands.add_parser("manifest", help="print the Collector Builder's manifest")
    printed.add_argument("--output-path", default=os.path.join("/tmp", "otelcol"),
                         help="where the builder puts the sources and the binary (outside this repository)")
    args = parser.parse_args(argv)
    if Path(args.output_path).resolve().is_relative_to(Path(__file__).resolve().parent.parent):
        parser.error("--output-path must be outside this repository: the build is not kept here")
    sys.stdout.write(manifest(args.output_path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
