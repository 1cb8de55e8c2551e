"""The flags several task modules share: their help, their checks, how each setting resolves.

Settings resolve flag → invoke config (`local.*`, `cluster.*`) → the built-in default, here
once for every task module. Tasks declare numeric flags with a `None` default, so invoke hands them over as strings
(typed `int` flags would make invoke raise a ValueError traceback on `--port abc`); the task
then parses each through these functions, which end it with one sentence on bad input.
"""
from __future__ import annotations

import math
from pathlib import Path

from invoke.exceptions import Exit

from meshtools.cluster import target as cluster_target
from meshtools.cluster.image import BuildOptions
from meshtools.cluster.kind import DEFAULT_CLUSTER_NAME
from meshtools.cluster.offline import versions as offline_versions
from meshtools.local import launch
from meshtools.local.mesh import LocalMesh
from meshtools.shared.durations import parse_duration
from meshtools.shared.topology import (
    FRONT_LOCAL_PORT,
    FRONT_URL,
    LOOPBACK,
    TRACE_PROXY_OTLP_PORT,
    TRACE_PROXY_PORT,
    TRACE_PROXY_URL,
    ZIPKIN_UI_LOCAL_PORT,
    LocalLayout,
)
from meshtools.shared.tracers import DEFAULT_TRACER, TRACERS
from meshtools.views.trace_view import terminal_console

MAX_PORT = 65535

NAME_HELP = f"kind cluster name (default: invoke config cluster.name, else {DEFAULT_CLUSTER_NAME})"
FRONT_PORT_HELP = f"local port for front-envoy on {LOOPBACK} (default {FRONT_LOCAL_PORT})"
TRACE_PROXY_PORT_HELP = f"local port for the trace proxy on {LOOPBACK} (default {TRACE_PROXY_PORT})"
ZIPKIN_UI_PORT_HELP = (f"local port for Zipkin's UI when the zipkin-ui variant is deployed (default "
                       f"{ZIPKIN_UI_LOCAL_PORT})")
VARIANT_HELP = ("manifests to apply: default (our trace proxy), upstream-proxy (the seed's), opentelemetry "
                "(as --tracer opentelemetry) or zipkin-ui (ours mirroring spans to the real Zipkin and its UI)")
OTLP_PORT_HELP = f"the trace proxy's OTLP/HTTP port on {LOOPBACK}, beside its Zipkin port (default {TRACE_PROXY_OTLP_PORT})"
TRACER_HELP = (f"the tracer every Envoy runs: zipkin (the seed's, Zipkin v2 JSON) or opentelemetry (OTLP/HTTP, "
               f"W3C traceparent); default: invoke setting local.tracer (local mesh) or cluster.tracer, "
               f"else {DEFAULT_TRACER}")
REBUILD_HELP = ("build without Docker's cache even if an image with this content tag exists, pulling the base "
                "image afresh when it came from a registry")
BASE_IMAGE_HELP = ("image to build from, e.g. a mirror of the Python image (default: invoke config "
                   "cluster.base_image, else the Dockerfile's ARG BASE_IMAGE)")
BUILD_NETWORK_HELP = "network for the build's steps, passed to `docker build --network` (e.g. host; default: invoke config cluster.build_network, else Docker's)"
CONTEXT_HELP = ("kubectl context of a shared cluster to use instead of the kind cluster (default: cluster.context); "
                "used only when listed in cluster.allowed_contexts or confirmed with --allow-context")
ALLOW_CONTEXT_HELP = "confirm --context this once, though it is not listed in cluster.allowed_contexts"
NAMESPACE_HELP = (f"namespace for the stack, created when missing (default: cluster.namespace; on a shared cluster "
                  f"{cluster_target.DEFAULT_REMOTE_NAMESPACE}, on kind the context's default)")
REGISTRY_HELP = ("registry host[:port][/path] the image is pushed to and pulled from, e.g. 127.0.0.1:5000 "
                 "(default: cluster.registry); needed with --context")
NODE_IMAGE_HELP = ("kind node image to create the cluster from, e.g. the one `inv cluster.images` builds "
                   "(default: invoke config cluster.node_image, else kind's own)")
KUBERNETES_HELP = f"Kubernetes release the offline images are built for (default {offline_versions.KUBERNETES})"
OFFLINE_HELP = ("build every image here (`inv cluster.images`: Debian packages, PyPI, Go modules, Maven "
                "Central) and pull none; the first run takes many minutes")
# The flags of every task that acts on a cluster, for `help=`; REGISTRY_HELP only where an image is pushed or pulled.
TARGET_HELP = {"context": CONTEXT_HELP, "allow_context": ALLOW_CONTEXT_HELP, "namespace": NAMESPACE_HELP}


def whole_number(value, flag: str, *, minimum: int | None = None, maximum: int | None = None) -> int | None:
    """`value` (a flag's string, an int from config, or None for "not given") as an int."""
    if value is None:
        return None
    if isinstance(value, bool):  # bool is an int subclass; a bare `--flag` is not a number
        raise Exit(f"{flag} needs a whole number.")
    try:
        number = value if isinstance(value, int) else int(str(value).strip())
    except ValueError:
        raise Exit(f"{flag} must be a whole number, got {value!r}.")
    if minimum is not None and maximum is not None and not minimum <= number <= maximum:
        raise Exit(f"{flag} must be between {minimum} and {maximum}, got {number}.")
    if minimum is not None and number < minimum:
        raise Exit(f"{flag} must be at least {minimum}, got {number}.")
    if maximum is not None and number > maximum:
        raise Exit(f"{flag} must be at most {maximum}, got {number}.")
    return number


def number(value, flag: str) -> float | None:
    """`value` (a flag's string, a number from config, or None for "not given") as a float.

    Only the parsing: nan and inf come back as they are, for a check that knows the flag's limits.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise Exit(f"{flag} needs a number.")
    try:
        return float(value if isinstance(value, (int, float)) else str(value).strip())
    except ValueError:
        raise Exit(f"{flag} must be a number, got {value!r}.")


def duration(value, flag: str) -> float | None:
    """A duration flag (`10`, `10s`, `1m30s`, `1h`; a number from config) in seconds, or None when not given.

    Only the parsing, as `number`: the caller checks the flag's limits.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise Exit(f"{flag} needs a duration, e.g. 10s.")
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise Exit(f"{flag} {exc}.") from None


def positive_duration(value, flag: str) -> float | None:
    """A duration above 0 seconds, or None when not given."""
    seconds = duration(value, flag)
    if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
        raise Exit(f"{flag} must be more than 0 seconds, got {value!r}.")
    return seconds


def port(value, flag: str) -> int | None:
    """A TCP port flag: a whole number from 1 to 65535, or None when not given."""
    return whole_number(value, flag, minimum=1, maximum=MAX_PORT)


def tracer_from(c, flag: str | None, section: str) -> str:
    """--tracer, else the invoke setting `<section>.tracer` (local or cluster), else zipkin."""
    value = flag or (c.config.get(section) or {}).get("tracer") or DEFAULT_TRACER
    if value not in TRACERS:
        raise Exit(f"--tracer must be {' or '.join(TRACERS)}, got {value!r}.")
    return value


def build_options(c, base_image=None, network=None, rebuild=False) -> BuildOptions:
    """Flags first, then invoke config (`cluster.base_image`, `cluster.build_network`), then the defaults."""
    cfg = c.config.get("cluster") or {}
    values = {"--base-image": base_image or cfg.get("base_image"), "--network": network or cfg.get("build_network")}
    for flag, value in values.items():
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise Exit(f"{flag} needs a value, got {value!r}.")
    return BuildOptions(base_image=values["--base-image"], network=values["--network"], rebuild=bool(rebuild))


def node_image(c, flag: str | None = None) -> str | None:
    """--node-image, then invoke config `cluster.node_image`; None leaves the choice to kind."""
    value = flag or (c.config.get("cluster") or {}).get("node_image")
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise Exit(f"--node-image needs a value, got {value!r}.")
    return value


def cluster_name(c, name: str | None = None) -> str:
    configured = (c.config.get("cluster") or {}).get("name")
    return name or configured or DEFAULT_CLUSTER_NAME


def target_from(c, name=None, context=None, namespace=None, registry=None,
                allow_context=False) -> cluster_target.Target:
    """The cluster the flags (then invoke config `cluster.*`) name, after the context guard."""
    cfg = c.config.get("cluster") or {}
    return cluster_target.resolve(
        cluster_name(c, name),
        context=context or cfg.get("context"),
        namespace=namespace or cfg.get("namespace"),
        registry=registry or cfg.get("registry"),
        allowed_contexts=cfg.get("allowed_contexts"),
        allow_context=allow_context,
    )


def requested_layout(c, replicas=None, front_port=None, trace_proxy_port=None, base_port=None,
                     otlp_port=None) -> dict[str, int]:
    """The layout settings the user chose (flags, then invoke config `local.*`), checked; the rest left out."""
    cfg = c.config.get("local", {})

    def chosen(flag_value, key):
        return flag_value if flag_value is not None else cfg.get(key)

    numbers = {
        "replicas": whole_number(chosen(replicas, "replicas"), "--replicas", minimum=1),
        "front_port": port(chosen(front_port, "front_port"), "--front-port"),
        "trace_proxy_port": port(chosen(trace_proxy_port, "trace_proxy_port"), "--trace-proxy-port"),
        "base_port": port(chosen(base_port, "base_port"), "--base-port"),
        "otlp_port": port(chosen(otlp_port, "otlp_port"), "--otlp-port"),
    }
    return {key: value for key, value in numbers.items() if value is not None}


def layout_from(c, replicas=None, front_port=None, trace_proxy_port=None, base_port=None, otlp_port=None) -> LocalLayout:
    """Flags first, then invoke config (`local.*`), then LocalLayout's defaults."""
    try:
        return LocalLayout(**requested_layout(c, replicas, front_port, trace_proxy_port, base_port, otlp_port))
    except ValueError as exc:
        raise Exit(f"{exc}.")


def mesh_from(c, layout: LocalLayout | None = None, tracer: str | None = None) -> LocalMesh:
    """The mesh in the configured state directory (`local.state_dir`, default .mesh/local)."""
    state_dir = c.config.get("local", {}).get("state_dir")
    return LocalMesh(layout=layout, state_dir=Path(state_dir) if state_dir else None, tracer=tracer)


def running_mesh(c) -> LocalMesh | None:
    """The local mesh of the configured state directory when it runs, with its saved layout."""
    mesh = mesh_from(c)
    return mesh if mesh.is_running() else None


def front_url(c, url: str | None = None) -> str:
    """--url when given, else the running local mesh's front (its ports may be moved), else FRONT_URL."""
    if url is not None:
        return url
    mesh = running_mesh(c)
    return mesh.layout.front_url if mesh else FRONT_URL


def trace_proxy_url(c, url: str | None = None) -> str:
    """--url when given, else the running local mesh's trace proxy, else TRACE_PROXY_URL."""
    if url is not None:
        return url
    mesh = running_mesh(c)
    return mesh.layout.trace_proxy_url if mesh else TRACE_PROXY_URL


FRONT_URL_HELP = f"the front of the mesh (default: the running local mesh's, else {FRONT_URL})"
TRACE_PROXY_URL_HELP = f"the trace proxy's Zipkin API (default: the running local mesh's, else {TRACE_PROXY_URL})"


PORT_FLAGS = {"front_port": "--front-port", "trace_proxy_port": "--trace-proxy-port", "base_port": "--base-port",
              "replicas": "--replicas", "otlp_port": "--otlp-port", "tracer": "--tracer"}


def start_or_reuse(c, replicas=None, front_port=None, trace_proxy_port=None, base_port=None, otlp_port=None,
                   tracer=None) -> LocalMesh:
    """`inv local.up`, and `inv up` without --cluster: start the mesh and say where it is, or say
    it runs already (Exit when it runs with another layout or tracer than asked for)."""
    console = terminal_console()  # piped: 80 columns, as inv demo and inv traces
    requested = requested_layout(c, replicas, front_port, trace_proxy_port, base_port, otlp_port)
    layout = layout_from(c, replicas, front_port, trace_proxy_port, base_port, otlp_port)
    running = running_mesh(c)
    if running:
        different = {key: value for key, value in requested.items() if getattr(running.layout, key) != value}
        if tracer and tracer_from(c, tracer, "local") != running.tracer:
            different["tracer"] = tracer_from(c, tracer, "local")
        if different:
            asked = ", ".join(f"{PORT_FLAGS[key]} {value}" for key, value in different.items())
            now = ", ".join(f"{PORT_FLAGS[key]} {running.tracer if key == 'tracer' else getattr(running.layout, key)}"
                            for key in different)
            raise Exit(f"The local mesh is already up with {now}; stop it with `inv local.down` to start it "
                       f"with {asked}.")
        console.print(f"The local mesh is already up: front {running.layout.front_url}, trace proxy "
                      f"{running.layout.trace_proxy_url} (`inv local.status` shows it, `inv local.down` stops it).")
        console.print(f"Traces in your browser: {running.layout.trace_proxy_url}/")
        return running
    mesh = launch.start(mesh_from(c, layout, tracer_from(c, tracer, "local")), console, local_timeout(c))
    console.print(f"[green]The local mesh is up[/] ({mesh.tracer} tracer).")
    console.print(f"Front {layout.front_url}, trace proxy {layout.trace_proxy_url}")
    console.print(f"Traces in your browser: {layout.trace_proxy_url}/")
    console.print("Try `inv echo --name friend`, then `inv traces`.")
    console.print("`inv local.status` shows the processes, `inv local.down` stops them.")
    return mesh


def local_timeout(c) -> float:
    """Seconds `local.up` and `demo` wait for the mesh (`local.timeout`, default 90)."""
    return float(c.config.get("local", {}).get("timeout", 90))
