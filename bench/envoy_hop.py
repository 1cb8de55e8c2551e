"""Envoy's own per-hop cost on this machine, beside our sidecar's (bench/mesh.py's per-hop lines).

Copies of service2's running sidecar config, each on free ports, each sending to the same app:
"Envoy alone" keeps only the router (no access log, no tracing: what any Envoy hop costs
here), the other two drop one of ours. bench/mesh.py times them, our sidecar and the app
direct in one interleaved loop, so the gap between ours and the app is split by numbers:
Envoy itself, then what each feature of our config adds.
"""
from __future__ import annotations

import copy
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

import yaml

from meshtools.shared.background import serving
from meshtools.shared.net import free_port
from meshtools.shared.topology import LOOPBACK

# label → the keys of our ingress's http_connection_manager that the copy drops
VARIANTS = {
    "Envoy alone (router only)": ("access_log", "tracing"),
    "ours without tracing": ("tracing",),
    "ours without access log": ("access_log",),
}


def variant(config: dict, drop: tuple[str, ...], port: int, admin_port: int) -> dict:
    """`config` (a sidecar's, one ingress listener) listening on `port`, without the `drop` keys."""
    config = copy.deepcopy(config)
    (listener,) = config["static_resources"]["listeners"]
    listener["address"]["socket_address"]["port_value"] = port
    for chain in listener["filter_chains"]:
        for hcm in chain["filters"]:
            for key in drop:
                hcm["typed_config"].pop(key, None)
    config["admin"]["address"]["socket_address"]["port_value"] = admin_port
    return config


@contextmanager
def envoys(sidecar_config: Path, envoy: str, tmp: Path) -> Iterator[dict[str, tuple[str, int]]]:
    """Run every variant of `sidecar_config`; yield label → (its /stage/0 URL, its pid); stop them all after."""
    config = yaml.safe_load(sidecar_config.read_text())
    with ExitStack() as stack:
        urls = {}
        for n, (label, drop) in enumerate(VARIANTS.items()):
            port, admin_port = free_port(), free_port()
            path = tmp / f"hop-variant-{n}.yaml"
            path.write_text(yaml.safe_dump(variant(config, drop, port, admin_port), sort_keys=False))
            proc = stack.enter_context(serving(
                [envoy, "-c", str(path), "--disable-hot-restart", "--log-level", "warn",
                 "--service-cluster", "bench-hop", "--service-node", "bench-hop"],  # as the mesh runs ours
                f"http://{LOOPBACK}:{admin_port}/ready", log=tmp / f"hop-variant-{n}.log"))
            urls[label] = (f"http://{LOOPBACK}:{port}/stage/0", proc.pid)
        yield urls
