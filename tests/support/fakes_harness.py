"""The fake docker, kind and kubectl (tests/fakes/, which record every argv and answer like the
real tools), set up for a test: their directories, the environment that points them there, and
`Fakes`, which runs the cluster tasks in-process against them."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Iterator

from invoke import Collection, Program

from meshtools.cluster import forward as port_forward
from meshtools.cluster.offline.cache import CACHE_DIR_ENV
from meshtools.shared.net import accepts_connections
from meshtools.tasks import cluster
from meshtools.shared.topology import LOOPBACK

FAKES = Path(__file__).parent / "fakes"
KEY = "hcaik_sentinel_0123456789abcdef"


def answers(port: int) -> bool:
    """Whether something (a port-forward) accepts connections on the loopback `port`."""
    return accepts_connections(LOOPBACK, port)


def link_fakes(bin_dir: Path, *tools: str) -> None:
    for tool in tools:
        (bin_dir / tool).symlink_to(FAKES / tool)


def fake_cluster_env(root: Path, tools: tuple[str, ...] = ("docker", "kind", "kubectl")) -> dict[str, str]:
    """Under `root`: bin/ holding `tools`, the fakes' state and call log, the cluster tasks' state
    directory, an empty offline cache (so no kind that `inv cluster.images` built is found) and a
    kubeconfig whose current context is someone's production. PATH is the caller's."""
    bin_dir, fake_state, cluster_state = root / "bin", root / "fake-state", root / "cluster-state"
    for path in (bin_dir, fake_state, cluster_state):
        path.mkdir()
    link_fakes(bin_dir, *tools)
    kubeconfig = root / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\ncurrent-context: production\n")
    return {"FAKE_LOG": str(root / "calls.jsonl"), "FAKE_STATE": str(fake_state),
            "ENVOY_TRACING_STATE_DIR": str(cluster_state), "KUBECONFIG": str(kubeconfig),
            CACHE_DIR_ENV: str(root / "offline-cache")}


class Fakes:
    """The fake tools for in-process task runs: environment set with monkeypatch, output from capsys."""

    def __init__(self, root: Path, monkeypatch, capsys):
        self.root = root
        self.monkeypatch = monkeypatch
        self.capsys = capsys
        env = fake_cluster_env(root)
        self.bin, self.log, self.state = root / "bin", Path(env["FAKE_LOG"]), Path(env["FAKE_STATE"])
        self.mesh, self.kubeconfig = Path(env["ENVOY_TRACING_STATE_DIR"]), Path(env["KUBECONFIG"])
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        for name in ("HONEYCOMB_API_KEY", "HONEYCOMB_WRITEKEY", "FAKE_DOCKER_DAEMON"):
            monkeypatch.delenv(name, raising=False)
        self.install("docker", "kind", "kubectl")

    def install(self, *tools: str) -> None:
        """Only these fakes on PATH (plus python3, which runs them)."""
        for existing in self.bin.iterdir():
            existing.unlink()
        link_fakes(self.bin, *tools)
        self.monkeypatch.setenv("PATH", os.pathsep.join([str(self.bin), os.path.dirname(sys.executable)]))

    def namespace(self, configure: dict | None = None) -> Collection:
        """The cluster tasks alone, with `configure` as their invoke configuration."""
        ns = Collection()
        ns.add_collection(cluster.ns)
        for t in cluster.TOP_LEVEL_TASKS:
            ns.add_task(t)
        if configure:
            ns.configure(configure)
        return ns

    def inv(self, *argv: str, configure: dict | None = None) -> tuple[int, str, str]:
        """Run tasks the way `inv` does; (exit code, stdout, stderr)."""
        ns = self.namespace(configure)
        self.capsys.readouterr()
        code = 0
        try:
            Program(namespace=ns).run(["inv", *argv])
        except SystemExit as exc:
            code = exc.code or 0
        out, err = self.capsys.readouterr()
        return code, out, err

    def state_data(self) -> dict:
        path = self.state / "state.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def add_context(self, name: str, server: str) -> None:
        """A shared cluster's context the fake kubectl knows (as if in the user's kubeconfig)."""
        state = self.state_data()
        state.setdefault("contexts", {})[name] = {"server": server}
        (self.state / "state.json").write_text(json.dumps(state))

    def add_object(self, kind: str, name: str, namespace: str | None, labels: dict | None = None) -> None:
        """An object someone else put in the cluster (kind lower-case: deployment, secret, namespace …)."""
        state = self.state_data()
        state.setdefault("objects", []).append(
            {"kind": kind, "name": name, "namespace": namespace, "labels": labels or {}})
        (self.state / "state.json").write_text(json.dumps(state))

    def objects(self, namespace: str | None = None) -> set[tuple[str, str, str | None]]:
        """(kind, name, namespace) of every object in the fake cluster, or of one namespace."""
        return {(o["kind"], o["name"], o["namespace"]) for o in self.state_data().get("objects", [])
                if namespace is None or o["namespace"] == namespace}

    def calls(self, tool: str | None = None) -> list[dict]:
        if not self.log.exists():
            return []
        records = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [r for r in records if tool is None or r["argv"][0] == tool]

    @staticmethod
    def is_call(call: dict, tool: str, *prefix: str) -> bool:
        """Whether `call` ran `tool` with arguments (after kubectl's --context and --namespace pairs)
        starting with prefix."""
        args = call["argv"][1:]
        while tool == "kubectl" and args[:1] in (["--context"], ["--namespace"]):
            args = args[2:]
        return call["argv"][0] == tool and args[: len(prefix)] == list(prefix)

    def argvs(self, tool: str, *prefix: str) -> list[list[str]]:
        """Calls of `tool` whose arguments (after kubectl's --context and --namespace pairs) start with prefix."""
        return [call["argv"] for call in self.calls(tool) if self.is_call(call, tool, *prefix)]


def fakes_for(harness: type[Fakes], tmp_path: Path, monkeypatch, capsys) -> Iterator[Fakes]:
    """For a `fakes` fixture: the harness, and no port-forward left running after the test."""
    # The fakes stand in for a cluster: `inv up`/`inv down` mean it here (the invoke setting
    # `target: cluster`), as on a machine configured for one.
    monkeypatch.setenv("INVOKE_TARGET", "cluster")
    fakes = harness(tmp_path, monkeypatch, capsys)
    yield fakes
    port_forward.stop(fakes.mesh)


class FakeDockerSDK:
    """Stands in for the docker SDK client the registry push uses (meshtools.cluster.registry).

    It knows the images the fake docker CLI built (its state file) and keeps a registry of its
    own: a push uploads the layers the registry lacks and answers as the daemon's push stream does.
    """

    LAYERS = ("sha256:base", "sha256:deps", "sha256:app")

    def __init__(self, fakes: Fakes, fail: str | None = None):
        self.fakes, self.fail = fakes, fail
        self.tags: list[tuple[str, str, str]] = []  # (local ref, repository, tag)
        self.pushes: list[dict] = []  # each push: repository, tag, auth_config passed, events
        self.blobs: dict[str, set[str]] = {}  # registry host → layers it holds
        self.images = self._Images(self)
        self.api = self._API(self)

    def ping(self) -> bool:
        return True

    class _Images:
        def __init__(self, sdk):
            self.sdk = sdk

        def get(self, ref):
            import docker

            if ref not in self.sdk.fakes.state_data().get("images", []):
                raise docker.errors.ImageNotFound(f"No such image: {ref}")
            sdk = self.sdk

            class _Image:
                def tag(self, repository, tag=None):
                    sdk.tags.append((ref, repository, tag))
                    return True
            return _Image()

    class _API:
        def __init__(self, sdk):
            self.sdk = sdk

        def push(self, repository, tag=None, stream=False, decode=False, auth_config=None):
            sdk = self.sdk
            assert stream and decode
            assert any(r == repository and t == tag for _, r, t in sdk.tags), "pushed before tagging"
            events = [{"status": f"The push refers to repository [{repository}]"}]
            if sdk.fail:
                events.append({"errorDetail": {"message": sdk.fail}, "error": sdk.fail})
            else:
                held = sdk.blobs.setdefault(repository.split("/", 1)[0], set())
                for layer in self.sdk.LAYERS:
                    events.append({"status": "Layer already exists" if layer in held else "Pushed", "id": layer[7:]})
                    held.add(layer)
                digest = "sha256:" + format(abs(hash((repository, tag))), "x").rjust(64, "0")[:64]
                events.append({"status": f"{tag}: digest: {digest} size: 1234"})
                events.append({"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest, "Size": 1234}})
            sdk.pushes.append({"repository": repository, "tag": tag, "auth_config": auth_config, "events": events})
            return iter(events)
