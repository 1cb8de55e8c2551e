"""kind, Kubernetes, etcd and CoreDNS, built from their Go modules into the cache.

Each tool gets a small module of its own under the cache folder that requires the tool's
module at its release and builds its commands; nothing of their source enters the repository.
Kubernetes' own go.mod points its staging modules (k8s.io/api, k8s.io/client-go, …) at
folders inside its repository, which a module that depends on it cannot see, so ours replaces
each with its published release (k8s.io/X v0.MINOR.PATCH), read from Kubernetes' go.mod.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from invoke.exceptions import Exit

from meshtools.cluster.offline import cache

STATIC = {"CGO_ENABLED": "0"}  # every binary here goes into a minimal image or a node: no libc ties


def require_go() -> str:
    go = shutil.which("go")
    if go is None:
        raise Exit("go is not on PATH: the offline cluster path builds kind and Kubernetes from Go modules "
                   "(install Go 1.24 or newer: https://go.dev/doc/install, or `apt-get install golang`).")
    return go


def go(args: list[str], cwd: Path, env: dict[str, str] | None = None, note=lambda text: None) -> str:
    """Run `go ARGS` in `cwd`, the last line it printed passed to `note` as it goes; its stdout back."""
    process = subprocess.Popen([require_go(), *args], cwd=cwd, env={**os.environ, **(env or {})},
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    stdout, stderr = process.communicate()
    if process.returncode:
        tail = "\n".join(stderr.strip().splitlines()[-15:])
        raise Exit(f"`go {' '.join(args[:2])}` failed in {cwd} (exit {process.returncode}):\n{tail}")
    return stdout


def module_info(module: str, version: str) -> dict:
    """`go mod download -json MODULE@VERSION`: its folder and go.mod in the module cache."""
    scratch = cache.folder("go", "scratch")
    return json.loads(go(["mod", "download", "-json", f"{module}@{version}"], scratch))


def write_module(folder: Path, name: str, requires: dict[str, str], packages: list[str],
                 replaces: dict[str, str] | None = None, main: str = "") -> None:
    lines = [f"module envoy-tracing.local/{name}", "", "go 1.24.0", ""]
    lines += [f"require {module} {version}" for module, version in requires.items()]
    lines += [""] + [f"replace {old} => {new}" for old, new in (replaces or {}).items()]
    (folder / "go.mod").write_text("\n".join(lines) + "\n")
    if main:
        (folder / "main.go").write_text(main)
        return
    imports = "\n".join(f'\t_ "{package}"' for package in packages)
    (folder / "tools.go").write_text(f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n")


def build(name: str, version: str, requires: dict[str, str], packages: list[str], *,
          replaces: dict[str, str] | None = None, ldflags: str = "", binary: str = "",
          main: str = "", note=lambda text: None) -> Path:
    """Build `packages` (main packages) into the cache; the folder holding the binaries.

    Each binary is named as `go build` names it, or `binary` when one package is built. With
    `main` (Go source of a main package) that program is built instead, as `binary`.

    Reused when a finished build of the same name, version and recipe exists.
    """
    recipe = cache.key(json.dumps([requires, packages, replaces, ldflags, binary, main], sort_keys=True))
    folder = cache.folder("go", f"{name}-{version}-{recipe}")
    binaries = folder / "bin"
    done = folder / "complete"
    if done.exists():
        return binaries
    write_module(folder, name, requires, packages, replaces, main)
    note("resolving modules")
    go(["mod", "tidy"], folder)
    commands = 1 if main else len(packages)
    note(f"compiling {commands} command{'s' if commands > 1 else ''}")
    binaries.mkdir(exist_ok=True)
    output = binaries / binary if binary else f"{binaries}/"
    go(["build", "-trimpath", "-ldflags", f"-s -w {ldflags}".strip(), "-o", str(output),
        *(["."] if main else packages)], folder, env=STATIC)
    done.write_text("")
    return binaries


def cached(name: str, version: str) -> bool:
    root = cache.cache_dir() / "go"
    return any((path / "complete").exists() for path in root.glob(f"{name}-{version}-*"))


# The commands a kind node runs, by package path under k8s.io/kubernetes/cmd.
KUBERNETES_COMMANDS = ("kubeadm", "kubelet", "kubectl", "kube-apiserver", "kube-controller-manager",
                       "kube-scheduler", "kube-proxy")


def kubernetes(version: str, note=lambda text: None) -> Path:
    """The Kubernetes commands at `version` (1.34.4), version-stamped as kubeadm requires."""
    info = module_info("k8s.io/kubernetes", f"v{version}")
    major, minor = version.split(".")[:2]
    stamp = " ".join(f"-X {package}.{field}={value}"
                     for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
                     for field, value in (("gitVersion", f"v{version}"), ("gitMajor", major), ("gitMinor", minor),
                                          ("gitTreeState", "clean")))
    return build("kubernetes", version, {"k8s.io/kubernetes": f"v{version}"},
                 [f"k8s.io/kubernetes/cmd/{command}" for command in KUBERNETES_COMMANDS],
                 replaces=staging_replaces(Path(info["GoMod"]).read_text(), version), ldflags=stamp, note=note)


def staging_replaces(kubernetes_go_mod: str, version: str) -> dict[str, str]:
    """Each `k8s.io/X => ./staging/…` of Kubernetes' go.mod as `k8s.io/X => k8s.io/X v0.MINOR.PATCH`,
    the release published with Kubernetes 1.MINOR.PATCH."""
    release = "v0." + version.split(".", 1)[1]
    staging = re.findall(r"^\s*(k8s\.io/[\w.-]+) => \./staging/", kubernetes_go_mod, re.MULTILINE)
    return {module: f"{module} {release}" for module in staging}


def kind(version: str, note=lambda text: None) -> Path:
    return build("kind", version, {"sigs.k8s.io/kind": version}, ["sigs.k8s.io/kind"], note=note)


def etcd(version: str, note=lambda text: None) -> Path:
    return build("etcd", version, {"go.etcd.io/etcd/server/v3": f"v{version}"}, ["go.etcd.io/etcd/server/v3"],
                 binary="etcd", note=note)


# The plugins kubeadm's Corefile names (errors, health, ready, kubernetes, prometheus, forward,
# cache, loop, reload, loadbalance) and log. CoreDNS' own main links all ~60 of its plugins,
# cloud DNS SDKs and tracers among them; this one compiles in a fraction of the time.
COREDNS_PLUGINS = ("cache", "errors", "forward", "health", "kubernetes", "loadbalance", "log", "loop", "metrics",
                   "ready", "reload")


def coredns_main(plugins=COREDNS_PLUGINS) -> str:
    imports = "".join(f'\t_ "github.com/coredns/coredns/plugin/{plugin}"\n' for plugin in plugins)
    return ("// CoreDNS with the plugins a kind cluster's Corefile uses (envoy-tracing's offline build).\n"
            "package main\n\nimport (\n\t\"github.com/coredns/coredns/coremain\"\n\n"
            f"{imports})\n\nfunc main() {{ coremain.Run() }}\n")


def coredns(version: str, note=lambda text: None) -> Path:
    return build("coredns", version, {"github.com/coredns/coredns": f"v{version}"}, [], binary="coredns",
                 main=coredns_main(), note=note)


def kind_files(version: str) -> Path:
    """kind's node files (entrypoint, systemd units, containerd config) from its module, at build time."""
    return Path(module_info("sigs.k8s.io/kind", version)["Dir"]) / "images" / "base" / "files"
