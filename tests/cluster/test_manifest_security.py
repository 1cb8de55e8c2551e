"""A static security check (checkov) over the manifests exactly as kubectl renders them.

Every check checkov knows for Kubernetes runs; the few skipped ones are listed below, each
with the reason it does not fit a local kind demo. Anything else failing fails the test.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from meshtools.cluster.stack import render_kustomization
from meshtools.shared.topology import MANIFESTS_DIR

VARIANTS = {"default": MANIFESTS_DIR, "upstream-proxy": MANIFESTS_DIR / "upstream-proxy",
            "opentelemetry": MANIFESTS_DIR / "opentelemetry", "zipkin-ui": MANIFESTS_DIR / "zipkin-ui"}
# The same variants as `inv deploy --context … --namespace … --registry …` renders them.
REMOTE = {f"remote-{name}": directory for name, directory in VARIANTS.items()}
REMOTE_REF = "127.0.0.1:5000/envoy-tracing/service:0123456789ab"

SKIPPED = {
    "CKV_K8S_21": "Namespace: the stack goes into the namespace of the kubectl context, in a kind "
                  "cluster made for this demo alone; `kubectl apply -k` with -n still works.",
    "CKV_K8S_15": "imagePullPolicy Always: on kind the images are built locally and `kind load`ed; Always "
                  "would pull from a registry that does not have them. They carry content or version tags, "
                  "so on a shared cluster a tag names one pushed image and IfNotPresent pulls it once.",
    "CKV_K8S_43": "Image digests: our image's tag is its content hash, made by `inv build` after the "
                  "manifests are written; Envoy, the upstream proxy and Zipkin are pinned to release tags.",
    "CKV_K8S_8": "Liveness probes: every process exits when it fails and the kubelet restarts it; an "
                 "HTTP probe through Envoy would add a trace every few seconds to what users watch.",
    "CKV2_K8S_6": "NetworkPolicy: the demo runs alone in a throwaway single-node kind cluster; no "
                  "other workload shares it. (Follow-up: policies allowing only the mesh's hops.)",
    "CKV_K8S_35": "Secret as environment variable: the key is optional (without it spans stay local); "
                  "a volume of an absent optional Secret would be an empty directory the proxy cannot "
                  "read a key from. The environment is not in argv. The upstream-proxy overlay copies "
                  "it into `-k`, which its kustomization.yaml documents as the price of that variant.",
}


def render(directory: Path) -> str:
    result = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def render_variant(variant: str, tmp_path: Path) -> str:
    if variant in VARIANTS:
        return render(VARIANTS[variant])
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    return render(render_kustomization(overlay, REMOTE[variant], REMOTE_REF, "tracing-demo", shared=True))


# A shared cluster's overlay sets a namespace and adds a NetworkPolicy, so these run there.
CHECKED_ON_SHARED_CLUSTERS = {"CKV_K8S_21", "CKV2_K8S_6"}


def skipped(variant: str) -> dict[str, str]:
    return {k: v for k, v in SKIPPED.items() if not (variant in REMOTE and k in CHECKED_ON_SHARED_CLUSTERS)}


def checkov() -> list[str]:
    found = shutil.which("checkov", path=os.path.dirname(sys.executable)) or shutil.which("checkov")
    assert found, "checkov is missing: pip install -e '.[test]'"
    return [found]


@pytest.mark.parametrize("variant", sorted(VARIANTS) + sorted(REMOTE))
def test_rendered_manifests_pass_checkov_with_only_the_justified_skips(variant, tmp_path):
    rendered = tmp_path / "rendered"
    rendered.mkdir()
    (rendered / f"{variant}.yaml").write_text(render_variant(variant, tmp_path))
    result = subprocess.run(
        [*checkov(), "--directory", str(rendered), "--framework", "kubernetes", "--output", "json", "--quiet",
         # No network: no policy download, no upload, no version check.
         "--skip-download", "--skip-check", ",".join(sorted(skipped(variant)))],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"},
    )
    report = json.loads(result.stdout)
    report = report[0] if isinstance(report, list) else report
    failed = report["results"]["failed_checks"] if "results" in report else []
    summary = [f"{c['check_id']} {c['check_name']}: {c['resource']}" for c in failed]
    assert not summary, "\n".join(summary)
    assert report["summary"]["passed"] > 100, "checkov checked almost nothing: did it parse the manifests?"


@pytest.mark.parametrize("variant", sorted(VARIANTS) + sorted(REMOTE))
def test_every_rendered_envoy_admin_listens_on_loopback_only(variant, tmp_path):
    objects = [o for o in yaml.safe_load_all(render_variant(variant, tmp_path)) if o]
    configs = [yaml.safe_load(o["data"]["envoy.yaml"]) for o in objects
               if o["kind"] == "ConfigMap" and "envoy.yaml" in o.get("data", {})]
    assert len(configs) == 3
    for config in configs:
        assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
