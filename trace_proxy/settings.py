"""Proxy settings: built-in defaults, then the environment, then command-line flags.

The Honeycomb key only ever comes from the environment or a file, never from argv, so it
cannot show up in process listings.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

# The image runs this package without the dev tooling: nothing here may import meshtools.
ZIPKIN_PORT = 9411  # Zipkin's well-known port; meshtools.shared.topology takes it from here
OTLP_HTTP_PORT = 4318  # OTLP/HTTP's default port: /v1/traces is served here as well as on ZIPKIN_PORT
DEFAULT_DATASET = "examples.kubernetes.envoy-traces"  # the seed's dataset
DEFAULT_API_HOST = "https://api.honeycomb.io/"
KEY_VARIABLES = ("HONEYCOMB_API_KEY", "HONEYCOMB_WRITEKEY")
# Quiet time after which a trace with its root and every parent counts as whole (store/wholeness.py).
DEFAULT_SETTLE_SECONDS = 1.0
# How long a trace may go without its root before its root counts as lost: longer than the
# front's 15 s route timeout, after which no request is still running (store/wholeness.py).
DEFAULT_ROOT_WAIT_SECONDS = 20.0
# Tag keys offered for value autocompletion (Zipkin's AUTOCOMPLETE_KEYS); the mesh's Envoy tags.
DEFAULT_AUTOCOMPLETE_KEYS = ("http.method", "http.status_code", "upstream_cluster", "response_flags", "error")


class SettingsError(ValueError):
    """A setting the proxy cannot start with; the message says how to fix it."""


@dataclass(frozen=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = ZIPKIN_PORT
    otlp_port: int = OTLP_HTTP_PORT  # 0: no second port (OTLP still arrives on `port`)
    threads: int = 8
    max_body_bytes: int = 5 * 1024 * 1024
    max_spans: int = 20_000
    # Bytes of span JSON the local store keeps: 20,000 Envoy spans are about 15 MB, so this
    # only binds when spans are large (a 1 MB tag), as the span count cannot.
    max_store_bytes: int = 64 * 1024 * 1024
    # Where the store's spans outlive the process (a SQLite file, store/span_file.py);
    # ":memory:" keeps them in memory only. The local mesh names a file in its state folder.
    store_file: str = ":memory:"
    writekey: str = field(default="", repr=False)
    dataset: str = DEFAULT_DATASET
    api_host: str = DEFAULT_API_HOST
    sample_rate: int = 1
    drop_fields: tuple[str, ...] = ()
    debug: bool = False
    downstream: str = ""
    # How many events may wait for Honeycomb / the downstream collector before new ones
    # are dropped (and counted), so an unreachable backend cannot grow memory.
    honeycomb_backlog: int = 10_000
    # Bodies for Honeycomb wait in the spool until answered (sinks/spool.py): on disk in
    # this directory (kept across restarts), or in memory when it is "".
    spool_dir: str = ""
    spool_bytes: int = 256 * 1024 * 1024
    downstream_queue: int = 1_000
    settle_seconds: float = DEFAULT_SETTLE_SECONDS
    # The quiet time that does for a trace with every call answered (store/wholeness.py);
    # None: the settle time.
    answered_settle_seconds: float | None = None
    # On SIGTERM, how long the sinks may go on delivering what waits before what is left is
    # spooled (or counted as lost): within Kubernetes' default 30 s grace period.
    shutdown_seconds: float = 10.0
    root_wait_seconds: float = DEFAULT_ROOT_WAIT_SECONDS
    autocomplete_keys: tuple[str, ...] = DEFAULT_AUTOCOMPLETE_KEYS
    # Web origins (https://ui.example) whose pages may post spans and read the API (CORS);
    # none by default: browsers' cross-site requests are refused.
    cors_origins: tuple[str, ...] = ()
    # The local mesh's log folder: the web UI's span panel shows the request's lines from it.
    log_dir: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> "Settings":
        env = os.environ if env is None else env
        values = {
            "writekey": next((env[k].strip() for k in KEY_VARIABLES if env.get(k, "").strip()), ""),
            "dataset": env.get("HONEYCOMB_DATASET", "").strip() or DEFAULT_DATASET,
            "api_host": env.get("HONEYCOMB_API_HOST", "").strip() or DEFAULT_API_HOST,
        }
        if env.get("AUTOCOMPLETE_KEYS", "").strip():  # Zipkin's variable, comma separated
            values["autocomplete_keys"] = tuple(k.strip() for k in env["AUTOCOMPLETE_KEYS"].split(",") if k.strip())
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_key_file(self, path: str | None) -> "Settings":
        if not path:
            return self
        try:
            key = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SettingsError(f"cannot read the write key file {path}: {exc.strerror}") from None
        if not key:
            raise SettingsError(f"the write key file {path} is empty")
        return replace(self, writekey=key)
