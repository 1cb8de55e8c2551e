"""Debian root filesystems made with debootstrap, cached as tarballs, imported into Docker.

Three flavours, all from one suite and one package cache: `base` (Python, for the service
image, and iptables for kube-proxy; Envoy and the control plane run on it too, so a node
stores its layer once), `jre` (Zipkin) and `node` (what kind's node runs: systemd,
containerd, runc, the CNI plugins, iptables). Needs root and debootstrap, as `docker import`
needs a daemon; the downloaded packages are kept, so a second flavour downloads only what
the first did not have.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from invoke.exceptions import Exit

from meshtools.cluster.offline import cache
from meshtools.cluster.offline.versions import DEBIAN_MIRROR, DEBIAN_SUITE

FLAVOURS = {
    "base": ["ca-certificates", "python3", "python3-venv", "python3-pip", "python-is-python3",
             "iptables", "conntrack"],
    "jre": ["ca-certificates", "default-jre-headless"],
    "node": ["systemd", "systemd-sysv", "dbus", "containerd", "runc", "containernetworking-plugins",
             "conntrack", "iptables", "nftables", "iproute2", "ethtool", "util-linux", "mount", "kmod",
             "libseccomp2", "pigz", "bash", "ca-certificates", "curl", "jq", "procps"],
}
RECIPE = "1"  # bump when the steps below change what a tarball holds
# The base image's pip installs the service's dependencies during `docker build`; it trusts what
# this machine trusts (a company's TLS proxy included), as pip on the host does.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# What a root filesystem need not carry into an image: downloaded packages, package lists, the
# build machine's resolver (Docker writes the container's own).
LEFTOVERS = ("var/cache/apt/archives", "var/lib/apt/lists", "etc/resolv.conf", "etc/hostname")


def require_root_tools() -> None:
    if os.geteuid() != 0:
        raise Exit("Building the offline images needs root (debootstrap makes Debian root filesystems): "
                   "run it with sudo, or as root.")
    if shutil.which("debootstrap") is None:
        raise Exit("debootstrap is not on PATH: `apt-get install debootstrap` (Debian and Ubuntu).")


def tarball(flavour: str, note=lambda text: None) -> Path:
    """The flavour's root filesystem as a tarball in the cache, made unless it is there."""
    packages = FLAVOURS[flavour]
    trusted = HOST_CA_BUNDLE if flavour == "base" and HOST_CA_BUNDLE.exists() else None
    name = f"{DEBIAN_SUITE}-{flavour}-{cache.key(RECIPE, DEBIAN_MIRROR, *packages, *filter(None, [trusted]))}.tar"
    target = cache.folder("rootfs") / name
    if target.exists():
        return target
    require_root_tools()
    with tempfile.TemporaryDirectory(prefix=f"envoy-tracing-{flavour}-") as scratch:
        root = Path(scratch) / "rootfs"
        note(f"debootstrap {DEBIAN_SUITE} with {len(packages)} packages")
        argv = ["debootstrap", "--variant=minbase", f"--cache-dir={cache.folder('debs')}",
                f"--include={','.join(packages)}", DEBIAN_SUITE, str(root), DEBIAN_MIRROR]
        result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if result.returncode:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-10:])
            raise Exit(f"debootstrap of the {flavour} root filesystem failed (exit {result.returncode}):\n{tail}")
        for leftover in LEFTOVERS:
            path = root / leftover
            if path.is_dir():
                shutil.rmtree(path)
                path.mkdir()
            elif path.exists():
                path.unlink()
        if trusted:
            bundle = root / "etc/ssl/certs/ca-certificates.crt"
            known = bundle.read_text() if bundle.exists() else ""
            bundle.write_text(known + "".join(pem for pem in split_pems(trusted.read_text()) if pem not in known))
        note("packing")
        partial = target.with_suffix(".partial")
        subprocess.run(["tar", "--create", "--numeric-owner", "--xattrs", "--file", str(partial), "-C", str(root),
                        "."], check=True)
        partial.rename(target)
    return target


def image_ref(flavour: str) -> str:
    return f"envoy-tracing/debian-{flavour}:{DEBIAN_SUITE}"


def split_pems(text: str) -> list[str]:
    end = "-----END CERTIFICATE-----"
    return [part.strip() + "\n" + end + "\n" for part in text.split(end) if "BEGIN CERTIFICATE" in part]
