"""service.Dockerfile on a real Docker engine: built by `inv build --no-load`, each role run
exactly as the rendered manifests run it (command, args, env, user and group, read-only root,
no capabilities, no new privileges, the manifests' volumes), on the host network with every
service on a free port of 127.0.0.1.

Marked `docker`: they run whenever a daemon answers and skip with the reason otherwise. The
image is built once per session (tests/conftest.py's `service_image`); pytest's summary says
which engine and base image they ran on.
"""
from __future__ import annotations

import ast
import json
import re
import shutil
import tarfile
import time
import uuid
from importlib.metadata import PackageNotFoundError, requires

import docker.errors
import pytest
import requests

from meshtools.cluster import image, lock
from meshtools.shared.net import free_port
from meshtools.shared.topology import LOOPBACK, PROJECT_ROOT, SERVICE1, SERVICE2, TRACE_PROXY
from tests.support import manifest_containers
from tests.support.docker_engine import build_service_image
from tests.support.honeycomb_standin import honeycomb_standin
from tests.support.trace_proxy_spans import envoy_trace
from tests.support.waiting import wait_for

pytestmark = pytest.mark.docker

ROLES = (SERVICE1, SERVICE2, TRACE_PROXY)
START_TIMEOUT = 30
LABEL = "envoy-tracing.test"


@pytest.fixture(scope="module")
def manifests() -> list[dict]:
    return manifest_containers.rendered()


def role(manifests: list[dict], deployment: str) -> tuple[dict, dict]:
    """(pod spec, container) of the one container in `deployment` that runs our image."""
    (found,) = [(spec, container) for name, spec, container
                in manifest_containers.containers_of_image(manifests, image.IMAGE_NAME) if name == deployment]
    return found


def listen_overrides(deployment: str, port: int, upstream: int | None = None, otlp_port: int | None = None) -> dict:
    """The only changes to the manifests: where each role listens (and service1 calls)."""
    if deployment == TRACE_PROXY:
        return {"args": {"--host": LOOPBACK, "--port": str(port), "--otlp-port": str(otlp_port or free_port())}}
    env = {"BIND": f"{LOOPBACK}:{port}"}
    if deployment == SERVICE1:
        env["EGRESS_URL"] = f"http://{LOOPBACK}:{upstream or free_port()}"
    return {"env": env}


class Containers:
    """Starts role containers from the session's image; removes every one at the end."""

    def __init__(self, engine, ref: str, manifests: list[dict]):
        self.engine, self.ref, self.manifests = engine, ref, manifests
        self.started = []

    def start(self, deployment: str, **overrides):
        spec, container = role(self.manifests, deployment)
        options = manifest_containers.run_options(spec, container, **overrides)
        started = self.engine.client.containers.run(
            self.ref, detach=True, name=f"envoy-tracing-test-{deployment}-{uuid.uuid4().hex[:8]}",
            labels={LABEL: "docker"}, **options)
        self.started.append(started)
        return started

    def serving(self, deployment: str, port: int, **overrides):
        """A started role whose /healthz answers on 127.0.0.1:port."""
        listen = listen_overrides(deployment, port, overrides.pop("upstream", None), overrides.pop("otlp_port", None))
        started = self.start(deployment, **listen, **overrides)
        wait_for(lambda: healthy(started, port), START_TIMEOUT, f"{deployment} answering /healthz on :{port}")
        return started

    def remove_all(self):
        for started in self.started:
            try:
                started.remove(force=True)
            except docker.errors.NotFound:
                pass


def healthy(container, port: int) -> bool:
    container.reload()
    if container.status == "exited":
        raise AssertionError(f"{container.name} exited: {container.logs().decode(errors='replace')[-2000:]}")
    try:
        return requests.get(f"http://{LOOPBACK}:{port}/healthz", timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


@pytest.fixture
def containers(docker_engine, service_image, manifests):
    running = Containers(docker_engine, service_image.ref, manifests)
    yield running
    running.remove_all()


def in_image(engine, ref: str, *argv: str, **options) -> str:
    """Run a one-off command in the image (as its own user, read-only); its stdout."""
    output = engine.client.containers.run(ref, list(argv), entrypoint=[], remove=True, network_mode="host",
                                          read_only=True, cap_drop=["ALL"], labels={LABEL: "docker"}, **options)
    return output.decode()


# The build.

# The docker CLI's own notice when it has no buildx plugin (Docker 23 and up talking to any
# daemon): about the machine's Docker, not about this Dockerfile.
CLI_LEGACY_BUILDER_NOTICE = re.compile(
    r"DEPRECATED: The legacy builder is deprecated.*?(?:buildx/|environment-variable\.)\s*$", re.S | re.M)


def test_inv_build_no_load_builds_the_dockerfile_without_warnings(service_image):
    output = CLI_LEGACY_BUILDER_NOTICE.sub("", service_image.output)

    assert service_image.ref.startswith(image.IMAGE_NAME + ":")
    warnings = [line for line in output.splitlines() if re.search(r"warn|deprecat", line, re.I)]
    assert not warnings, warnings


def test_the_image_runs_as_10001_10001_and_holds_no_build_leftovers(docker_engine, service_image):
    assert docker_engine.client.images.get(service_image.ref).attrs["Config"]["User"] == "10001:10001"
    ids = in_image(docker_engine, service_image.ref, "sh", "-c", "id -u; id -g").split()
    assert ids == ["10001", "10001"]
    leftovers = in_image(docker_engine, service_image.ref, "sh", "-c",
                         "ls -d /app /src /build 2>/dev/null; find /opt/venv -name '*.egg-info' -o -name build; "
                         "ls /opt/venv/bin | grep -x 'pip.*' || true")
    assert leftovers.strip() == ""


def _imports(package: str) -> set[str]:
    """Every module `package` imports (absolute, with submodules), and its own modules."""
    names = set()
    root = PROJECT_ROOT / package
    for path in root.rglob("*.py"):
        names.add(".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts).removesuffix(".__init__"))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
    return names - {"__future__"}


def _tooling_distributions() -> set[str]:
    """What the tools and test extras install, beyond what the image's lock pins."""
    found, pending = set(), [f"envoy-tracing[{extra}]" for extra in ("tools", "test")]
    while pending:
        text = pending.pop()
        name, _, extra = text.partition("[")
        name = lock.canonical(name)
        try:
            needs = requires(name) or []
        except PackageNotFoundError:
            needs = []
        for requirement in needs:
            wanted = extra.rstrip("]")
            marker = requirement.partition(";")[2]
            if "extra ==" in marker and f'extra == "{wanted}"' not in marker:
                continue
            dist = re.split(r"[\s<>=!~;(]", requirement, maxsplit=1)[0]
            key = lock.canonical(dist.split("[")[0])
            if key not in found and key != "envoy-tracing":
                found.add(key)
                pending.append(dist.split("[")[0])
            elif key == "envoy-tracing":
                pending.append(dist)
    return found - set(lock.read_pins())


def test_tooling_is_absent_and_every_import_of_the_two_roles_resolves(docker_engine, service_image):
    imports = sorted(_imports("service") | _imports("trace_proxy"))
    tooling = sorted(_tooling_distributions() | {"pip", "setuptools"})
    assert {"invoke", "pyyaml", "rich", "docker", "supervisor", "pygments"} <= set(tooling)
    probe = (
        "import importlib, importlib.metadata as md, json, sys\n"
        "imports, tooling = json.loads(sys.argv[1]), json.loads(sys.argv[2])\n"
        "failed = {}\n"
        "for name in imports:\n"
        "    try: importlib.import_module(name)\n"
        "    except Exception as exc: failed[name] = repr(exc)\n"
        "present = []\n"
        "for dist in tooling:\n"
        "    try: md.version(dist); present.append(dist)\n"
        "    except md.PackageNotFoundError: pass\n"
        "print(json.dumps({'failed': failed, 'present': present, 'imported': len(imports)}))\n"
    )
    result = json.loads(in_image(docker_engine, service_image.ref, "python", "-c", probe,
                                 json.dumps(imports), json.dumps(tooling), user="10001:10001",
                                 tmpfs={"/tmp": ""}))

    assert result["failed"] == {} and result["imported"] == len(imports) > 30
    assert result["present"] == []


def test_pip_check_ran_in_the_build_and_the_lock_is_what_the_image_holds(docker_engine, service_image):
    listing = in_image(docker_engine, service_image.ref, "python", "-c",
                       "import importlib.metadata as md, json; "
                       "print(json.dumps({d.metadata['Name']: d.version for d in md.distributions()}))")
    installed = {lock.canonical(name): version for name, version in json.loads(listing).items()}
    assert installed.pop("envoy-tracing") == "0.1.0"
    assert installed == lock.read_pins()


# Each role, as the manifests run it.

def test_service2_answers_healthz_and_echo(containers):
    port = free_port()
    containers.serving(SERVICE2, port)

    health = requests.get(f"http://{LOOPBACK}:{port}/healthz", timeout=5)
    assert health.status_code == 200 and health.json() == {"status": "ok", "service": "2"}
    echo = requests.get(f"http://{LOOPBACK}:{port}/echo/friend", timeout=5)
    assert echo.status_code == 200 and echo.json() == {"upstream": "healthy"}


def test_service1_echoes_through_a_service2_container(containers):
    service2_port, service1_port = free_port(), free_port()
    containers.serving(SERVICE2, service2_port)
    service1 = containers.serving(SERVICE1, service1_port, upstream=service2_port)

    reply = requests.get(f"http://{LOOPBACK}:{service1_port}/echo/friend", timeout=15)
    assert reply.status_code == 200, reply.text
    assert "Hello friend!" in reply.text and "service 1" in reply.text
    # Five stage calls reached service2 and came back whole.
    assert '"status": 200' in service1.logs().decode()


def test_the_trace_proxy_ingests_answers_zipkin_queries_and_forwards_to_honeycomb(containers):
    key = "hcaik_docker_test_" + uuid.uuid4().hex
    port, otlp_port = free_port(), free_port()
    with honeycomb_standin() as standin:
        proxy = containers.serving(TRACE_PROXY, port, otlp_port=otlp_port, secrets={"HONEYCOMB_API_KEY": key},
                                   extra_env={"HONEYCOMB_API_HOST": standin.url})
        # The OTLP/HTTP listener the manifests open beside Zipkin's answers too.
        otlp = requests.post(f"http://{LOOPBACK}:{otlp_port}/v1/traces", json={"resourceSpans": []}, timeout=5)
        assert otlp.status_code == 200, otlp.text
        spans = envoy_trace()
        trace_id = spans[0]["traceId"]
        posted = requests.post(f"http://{LOOPBACK}:{port}/api/v2/spans", json=spans, timeout=5)
        assert posted.status_code == 202, posted.text

        stored = wait_for(lambda: _trace(port, trace_id), 10, f"trace {trace_id} in the Zipkin API")
        assert sorted(span["id"] for span in stored) == sorted(span["id"] for span in spans)
        # The web UI's templates and static files made it into the image (package data).
        page = requests.get(f"http://{LOOPBACK}:{port}/trace/{trace_id}", timeout=5)
        assert page.status_code == 200 and trace_id in page.text, page.text[:500]
        stylesheets = re.findall(r'href="([^"]+\.css(?:\?[^"]*)?)"', page.text)
        assert stylesheets and all(requests.get(f"http://{LOOPBACK}:{port}{sheet}", timeout=5).status_code == 200
                                   for sheet in stylesheets), stylesheets
        batches = standin.wait_for_trace(trace_id, len(spans))
        assert {batch.dataset for batch in batches} == {"examples.kubernetes.envoy-traces"}
        assert all(batch.headers.get("X-Honeycomb-Team") == key for batch in batches)
    assert key not in json.dumps(proxy.attrs["Args"]) + json.dumps(proxy.attrs["Path"])


def _trace(port: int, trace_id: str) -> list[dict] | None:
    reply = requests.get(f"http://{LOOPBACK}:{port}/api/v2/trace/{trace_id}", timeout=5)
    return reply.json() if reply.status_code == 200 and len(reply.json()) >= 12 else None


def test_every_volume_the_manifests_mount_is_needed(containers, manifests):
    """Without any one of them (on a read-only root) the role fails instead of serving."""
    checked = []
    for deployment in ROLES:
        _, container = role(manifests, deployment)
        for mount in container.get("volumeMounts", []):
            port = free_port()
            started = containers.start(deployment, without_mounts=(mount["mountPath"],),
                                       **listen_overrides(deployment, port))
            result = started.wait(timeout=START_TIMEOUT)
            logs = started.logs().decode(errors="replace")
            assert result["StatusCode"] != 0, f"{deployment} ran without {mount['mountPath']}: {logs[-1000:]}"
            assert "temporary directory" in logs or mount["mountPath"] in logs, logs[-1000:]
            checked.append((deployment, mount["mountPath"]))
    assert {deployment for deployment, _ in checked} == set(ROLES)


@pytest.mark.parametrize("deployment", ROLES)
def test_sigterm_stops_the_role_within_2_seconds(containers, deployment):
    port = free_port()
    started = containers.serving(deployment, port)

    began = time.monotonic()
    started.kill(signal="SIGTERM")
    result = started.wait(timeout=10)
    elapsed = time.monotonic() - began
    assert elapsed < 2, f"{deployment} took {elapsed:.1f} s to stop"
    assert result["StatusCode"] == 0, started.logs().decode(errors="replace")[-1000:]


# What `inv build` reuses and what it rebuilds.

def test_an_unchanged_tree_reuses_the_image(docker_engine, docker_base_image, service_image, tmp_path):
    again = build_service_image(docker_engine, docker_base_image.ref, tmp_path)

    assert (again.ref, again.image_id) == (service_image.ref, docker_engine.image_id(service_image.ref))
    assert "reusing it" in again.output and "Step 1/" not in again.output


def test_a_changed_source_builds_a_new_tag(docker_engine, docker_base_image, service_image, tmp_path, monkeypatch):
    tree = tmp_path / "tree"
    for name in image.IMAGE_INPUTS:
        source = PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(source, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            tree.mkdir(exist_ok=True)
            shutil.copy(source, tree / name)
    (tree / ".dockerignore").write_text((PROJECT_ROOT / ".dockerignore").read_text())
    with (tree / "service" / "__init__.py").open("a") as out:
        out.write("\n# changed by test_a_changed_source_builds_a_new_tag\n")
    (tree / "README.md").write_text("")
    for name, value in docker_engine.env.items():
        monkeypatch.setenv(name, value)

    options = image.BuildOptions(base_image=docker_base_image.ref, network="host")
    ref, built = image.ensure_built(tree, options)
    try:
        assert built and ref != service_image.ref and docker_engine.image_id(ref)
        marker = in_image(docker_engine, ref, "sh", "-c",
                          "grep -c 'changed by test_a_changed' /opt/venv/lib/python3*/site-packages/service/__init__.py")
        assert marker.strip() == "1"
    finally:
        docker_engine.client.images.remove(ref, force=True)


def test_the_kind_load_archive_saves_on_this_daemon(docker_engine, service_image, tmp_path, monkeypatch):
    for name, value in docker_engine.env.items():
        monkeypatch.setenv(name, value)
    archive = tmp_path / "image.tar"

    image.save_archive(service_image.ref, archive)
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert [service_image.ref] in [entry.get("RepoTags") for entry in manifest]


def test_rebuild_makes_a_new_image_under_the_same_tag(docker_engine, docker_base_image, service_image, tmp_path):
    before = docker_engine.image_id(service_image.ref)
    rebuilt = build_service_image(docker_engine, docker_base_image.ref, tmp_path, "--rebuild")

    assert rebuilt.ref == service_image.ref and rebuilt.image_id != before
    assert "Using cache" not in rebuilt.output
    try:
        docker_engine.client.images.remove(before)  # dangling now
    except docker.errors.APIError:
        pass
