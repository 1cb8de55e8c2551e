"""A real image registry on loopback for the push tests: Debian's docker-registry (distribution 2.8).

The binary is unpacked, never installed (installing the package would start a registry on
every interface): `.ci/run` puts it under .cache/docker-registry/ with `apt-get download
docker-registry` and `dpkg -x`. It serves 127.0.0.1:FREE_PORT only, from a config file and a
storage directory of the test's own, and asks for a user and password (htpasswd, as a private
registry would). Docker pushes to a loopback registry without TLS.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import bcrypt
import requests
import yaml

from meshtools.shared.net import free_port
from meshtools.shared.topology import LOOPBACK, PROJECT_ROOT

# Where .ci/run unpacks the package; REGISTRY_BIN_ENV names another binary.
UNPACKED = PROJECT_ROOT / ".cache" / "docker-registry" / "usr" / "bin" / "docker-registry"
REGISTRY_BIN_ENV = "ENVOY_TRACING_REGISTRY_BIN"
START_TIMEOUT = 20.0


def binary() -> str | None:
    chosen = os.environ.get(REGISTRY_BIN_ENV)
    if chosen:
        return chosen if os.access(chosen, os.X_OK) else None
    if os.access(UNPACKED, os.X_OK):
        return str(UNPACKED)
    return shutil.which("docker-registry") or shutil.which("registry")


@dataclass
class Registry:
    host: str  # 127.0.0.1:PORT, what `--registry` takes
    storage: Path
    user: str
    password: str

    @property
    def auth(self) -> tuple[str, str]:
        return self.user, self.password

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def tags(self, repository: str) -> list[str]:
        reply = requests.get(f"{self.url}/v2/{repository}/tags/list", auth=self.auth, timeout=10)
        if reply.status_code == 404:
            return []
        reply.raise_for_status()
        return reply.json().get("tags") or []

    def manifest_digest(self, repository: str, tag: str) -> str:
        reply = requests.head(f"{self.url}/v2/{repository}/manifests/{tag}", auth=self.auth, timeout=10, headers={"Accept": ", ".join([
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
        ])})
        reply.raise_for_status()
        return reply.headers["Docker-Content-Digest"]

    def blobs(self) -> set[str]:
        """Every blob (layer, config) the registry stores, by digest: what any push uploaded."""
        root = self.storage / "docker" / "registry" / "v2" / "blobs"
        return {path.name for path in root.glob("*/*/*") if path.is_dir()}


def serve(directory: Path, executable: str, user: str, password: str) -> Iterator[Registry]:
    """Run the registry on a free loopback port, for `user` only, until the generator is closed."""
    port = free_port()
    storage = directory / "storage"
    storage.mkdir()
    htpasswd = directory / "htpasswd"
    # bcrypt is the only hash the registry's htpasswd accepts; cost 4 keeps each check fast.
    htpasswd.write_bytes(user.encode() + b":" + bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)) + b"\n")
    config = directory / "config.yml"
    config.write_text(yaml.safe_dump({
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(storage)}},
        "http": {"addr": f"{LOOPBACK}:{port}"},
        "auth": {"htpasswd": {"realm": "envoy-tracing-tests", "path": str(htpasswd)}},
    }))
    log = directory / "registry.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([executable, "serve", str(config)], stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    registry = Registry(f"{LOOPBACK}:{port}", storage, user, password)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"docker-registry exited ({process.returncode}): {log.read_text()[-2000:]}")
            try:
                if requests.get(f"{registry.url}/v2/", auth=registry.auth, timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"docker-registry did not answer within {START_TIMEOUT:g}s: {log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield registry
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
