"""Names and ports of the mesh, defined once for both targets.

The cluster target uses the fixed container ports below; the local target lays the same
processes out on loopback (`LocalLayout`). Everything else (Envoy rendering, the process
supervisor, the tasks' defaults) reads from here.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trace_proxy.settings import OTLP_HTTP_PORT, ZIPKIN_PORT

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MANIFESTS_DIR = PROJECT_ROOT / "manifests"
ENVOY_CONFIG_DIR = MANIFESTS_DIR / "base" / "envoy"

# The Kubernetes Services (and DNS names) the Envoy configs route to.
FRONT = "front-envoy"
SERVICE1 = "service1"
SERVICE2 = "service2"
TRACE_PROXY = "trace-proxy"
ZIPKIN_UI = "zipkin"  # the real Zipkin of the zipkin-ui variant (manifests/zipkin-ui/)

# Container ports in the cluster (the Envoy configs are written for these).
INGRESS_PORT = 80  # every sidecar's ingress listener, and front-envoy's listener
APP_PORT = 8080  # the Flask app inside a service pod
EGRESS_PORT = 9000  # service1's sidecar egress listener (EGRESS_URL)
TRACE_PROXY_PORT = ZIPKIN_PORT  # Zipkin's well-known port, as the trace proxy defines it
TRACE_PROXY_OTLP_PORT = OTLP_HTTP_PORT  # the trace proxy's second port, OTLP/HTTP's usual one

# What users and tasks talk to, on either target (port-forward or direct).
LOOPBACK = "127.0.0.1"
FRONT_LOCAL_PORT = 8000  # the seed's `kubectl port-forward … 8000:80`
FRONT_URL = f"http://{LOOPBACK}:{FRONT_LOCAL_PORT}"
TRACE_PROXY_URL = f"http://{LOOPBACK}:{TRACE_PROXY_PORT}"
ZIPKIN_UI_LOCAL_PORT = ZIPKIN_PORT + 1  # the zipkin-ui variant's Zipkin, beside the trace proxy
DOCS_PORT = 8001  # `inv docs` serves the documentation site here, beside front-envoy's 8000
DOCS_DIR = PROJECT_ROOT / "docs"  # MkDocs' sources (mkdocs.yml in the project root)
ZIPKIN_UI_URL = f"http://{LOOPBACK}:{ZIPKIN_UI_LOCAL_PORT}/zipkin/"
LOCAL_BASE_PORT = 10000  # the local target's other ports count up from here

DEFAULT_REPLICAS = 3  # service1 replicas, as in the seed

ENVOY_CONFIG_FILES = {
    FRONT: "front-envoy.yaml",
    SERVICE1: "service1-envoy.yaml",
    SERVICE2: "service2-envoy.yaml",
}


@dataclass(frozen=True)
class Instance:
    """One local copy of a pod: the app (if any) and its Envoy."""

    name: str  # becomes the span's localEndpoint.serviceName, like a pod name
    service: str  # FRONT, SERVICE1 or SERVICE2
    ingress_port: int
    admin_port: int
    app_port: int | None = None
    egress_port: int | None = None


@dataclass(frozen=True)
class LocalLayout:
    """Where each local process listens on 127.0.0.1.

    front-envoy and the trace proxy keep the ports users know (8000, 9411, and 4318 where the
    proxy also takes OTLP from other OpenTelemetry clients); every other
    port is allocated upwards from `base_port`, four per instance (service2, each service1
    replica), then front-envoy's admin port.
    """

    front_port: int = FRONT_LOCAL_PORT
    trace_proxy_port: int = TRACE_PROXY_PORT
    base_port: int = LOCAL_BASE_PORT
    replicas: int = DEFAULT_REPLICAS
    host: str = LOOPBACK
    otlp_port: int = TRACE_PROXY_OTLP_PORT

    def __post_init__(self):
        if self.replicas < 1:
            raise ValueError("--replicas must be at least 1")
        ports = self.ports()
        span = f"--base-port {self.base_port} uses {self.base_port}–{self.base_port + 4 * (1 + self.replicas)}"
        outside = sorted({port for port in ports if not 1 <= port <= 65535})
        if outside:
            raise ValueError(f"ports must lie between 1 and 65535, not {', '.join(map(str, outside))} ({span})")
        clashes = sorted({port for port in ports if ports.count(port) > 1})
        if clashes:
            raise ValueError(f"port {', '.join(map(str, clashes))} would be used twice; choose ports that do not "
                             f"overlap ({span})")

    def _block(self, index: int) -> tuple[int, int, int, int]:
        start = self.base_port + 4 * index
        return start, start + 1, start + 2, start + 3

    @property
    def front(self) -> Instance:
        return Instance(
            name=FRONT,
            service=FRONT,
            ingress_port=self.front_port,
            admin_port=self.base_port + 4 * (1 + self.replicas),
        )

    @property
    def service2(self) -> list[Instance]:
        app, ingress, _, admin = self._block(0)
        return [Instance(f"{SERVICE2}-0", SERVICE2, ingress, admin, app_port=app)]

    @property
    def service1(self) -> list[Instance]:
        result = []
        for i in range(self.replicas):
            app, ingress, egress, admin = self._block(1 + i)
            result.append(Instance(f"{SERVICE1}-{i}", SERVICE1, ingress, admin, app, egress))
        return result

    @property
    def envoys(self) -> list[Instance]:
        return [*self.service2, *self.service1, self.front]

    @property
    def front_url(self) -> str:
        return f"http://{self.host}:{self.front_port}"

    @property
    def trace_proxy_url(self) -> str:
        return f"http://{self.host}:{self.trace_proxy_port}"

    def ports(self) -> list[int]:
        """Every port the local target listens on."""
        ports = [self.trace_proxy_port, self.otlp_port]
        for inst in self.envoys:
            ports += [p for p in (inst.ingress_port, inst.admin_port, inst.app_port, inst.egress_port) if p is not None]
        return ports
