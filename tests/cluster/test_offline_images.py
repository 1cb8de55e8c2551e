"""The offline cluster path's pieces that need no Docker: names, keys, the Corefile edit, the
runc wrapper, and the task's answer to bad input. The real build and the cluster made from it
are exercised by .ci/run (`inv cluster.images`) and tests/cluster/test_cluster_e2e.py."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from invoke.exceptions import Exit

from meshtools.cluster.offline import build, cache, gobuild, node, versions
from meshtools.cluster.offline.background import Background
from meshtools.cluster.offline.docker_images import FILES
from meshtools.cluster.offline.progress import Steps
from tests.support.inv_process import run_inv

# kubeadm 1.34's Corefile, as a cluster made by kind holds it.
KUBEADM_COREFILE = """.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30 {
       disable success cluster.local
       disable denial cluster.local
    }
    loop
    reload
    loadbalance
}
"""


def test_the_corefile_loses_its_forward_and_nothing_else():
    closed = node.without_forward(KUBEADM_COREFILE)
    assert "forward" not in closed and "max_concurrent" not in closed
    kept = [line for line in KUBEADM_COREFILE.splitlines() if "forward" not in line and "max_concurrent" not in line]
    # The forward block's closing brace goes with it; every other line stays, in order.
    assert closed.splitlines() == [line for i, line in enumerate(kept)
                                   if not (line.strip() == "}" and kept[i - 1].strip().startswith("prometheus"))]
    assert node.without_forward("    forward . 8.8.8.8\n    cache 30\n") == "    cache 30\n"


@pytest.mark.parametrize("given, wanted", [("1.34.4", "1.34.4"), ("v1.34.4", "1.34.4"), (" 1.35.0 ", "1.35.0")])
def test_kubernetes_releases_are_named_with_or_without_a_v(given, wanted):
    assert versions.check_kubernetes(given) == wanted


@pytest.mark.parametrize("given", ["1.34", "latest", "2.0.1", "1.34.4-rc.1", ""])
def test_anything_else_is_refused_in_one_sentence(given):
    with pytest.raises(Exit, match=r"--kubernetes takes a release like \d+\.\d+\.\d+"):
        versions.check_kubernetes(given)


def test_inv_cluster_images_refuses_a_bad_release_before_building_anything(tmp_path):
    result = run_inv("cluster.images", "--kubernetes", "latest", env={cache.CACHE_DIR_ENV: str(tmp_path)})
    assert result.returncode == 1
    assert "--kubernetes takes a release like" in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == [], "nothing may be built or downloaded for a bad flag"


def test_kubernetes_staging_modules_are_replaced_by_their_published_releases():
    go_mod = ("module k8s.io/kubernetes\n\nreplace (\n\tk8s.io/api => ./staging/src/k8s.io/api\n"
              "\tk8s.io/client-go => ./staging/src/k8s.io/client-go\n\tgithub.com/x/y => github.com/x/y v1.0.0\n)\n")
    assert gobuild.staging_replaces(go_mod, "1.34.4") == {
        "k8s.io/api": "k8s.io/api v0.34.4", "k8s.io/client-go": "k8s.io/client-go v0.34.4"}


def test_image_tags_give_the_module_release_to_build():
    assert build.tag_version("registry.k8s.io/etcd:3.6.5-0") == "3.6.5"
    assert build.tag_version("registry.k8s.io/coredns/coredns:v1.12.1") == "1.12.1"


def test_the_envoy_image_is_the_release_the_manifests_name():
    assert versions.envoy_image() == "envoyproxy/envoy:v1.40.0"


def test_cache_keys_follow_every_input(tmp_path):
    folder = tmp_path / "recipe"
    folder.mkdir()
    (folder / "a").write_text("one")
    before = cache.key("1.34.4", folder)
    assert cache.key("1.34.4", folder) == before
    (folder / "a").write_text("two")
    assert cache.key("1.34.4", folder) != before
    assert cache.key("1.34.5", folder) != cache.key("1.34.4", folder)


def test_the_cache_lives_under_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.delenv(cache.CACHE_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.cache_dir() == tmp_path / "envoy-tracing" / "offline"


def test_piped_progress_is_one_line_per_step_within_80_columns():
    from io import StringIO
    from rich.console import Console
    out = StringIO()
    steps = Steps(total=2, console=Console(file=out, width=80, force_terminal=False, highlight=False))
    with steps.step("Kubernetes v1.34.4 (15-25 min on 2 cores)") as step:
        step.note("compiling 7 commands")
    with steps.step("node image") as step:
        step.skip("in Docker")
    steps.finish("Ready: envoy-tracing/kind-node:v1.34.4")
    lines = out.getvalue().splitlines()
    assert lines[0] == "[1/2] Kubernetes v1.34.4 (15-25 min on 2 cores)…"
    assert lines[2].startswith("✓ [1/2] Kubernetes v1.34.4") and lines[2].endswith("s)")
    assert lines[4] == "✓ [2/2] node image (cached: in Docker)"
    assert all(len(line) <= 80 for line in lines)


# runc-within-bounds: the spec it hands runc, seen through a stand-in runc that prints it.
WRAPPER = FILES / "runc-within-bounds"
CAP_SYS_RESOURCE = 24


def caller_has_sys_resource() -> bool:
    bounding = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("CapBnd:"))
    return bool(int(bounding.split()[1], 16) & (1 << CAP_SYS_RESOURCE))


def run_wrapper(tmp_path: Path, spec: dict, drop: bool) -> dict:
    bundle = tmp_path / "bundle"
    bundle.mkdir(exist_ok=True)
    (bundle / "config.json").write_text(json.dumps(spec))
    fake_runc = tmp_path / "runc"
    fake_runc.write_text("#!/bin/sh\n[ \"$1\" = create ] && cat \"$3/config.json\"\n")
    fake_runc.chmod(0o755)
    argv = [str(WRAPPER), "create", "--bundle", str(bundle), "container-id"]
    if drop:
        argv = ["capsh", "--drop=cap_sys_resource", "--", "-c", " ".join(argv)]
    result = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "REAL_RUNC": str(fake_runc)})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


PRIVILEGED = {"process": {"oomScoreAdj": -998, "capabilities": {
    "bounding": ["CAP_CHOWN", "CAP_SYS_RESOURCE", "CAP_NET_ADMIN"],
    "effective": ["CAP_CHOWN", "CAP_SYS_RESOURCE"], "permitted": ["CAP_SYS_RESOURCE"]}}}


@pytest.mark.skipif(shutil.which("jq") is None, reason="runc-within-bounds needs jq (apt-get install jq)")
def test_runc_is_asked_only_for_what_the_caller_can_grant(tmp_path):
    """Without CAP_SYS_RESOURCE (these CI machines' root), the capability and a negative OOM score
    leave the spec; with it, the spec reaches runc untouched."""
    if caller_has_sys_resource():
        assert run_wrapper(tmp_path, PRIVILEGED, drop=False) == PRIVILEGED
        if shutil.which("capsh") is None:
            return
        spec = run_wrapper(tmp_path, PRIVILEGED, drop=True)
    else:
        spec = run_wrapper(tmp_path, PRIVILEGED, drop=False)
    caps = spec["process"]["capabilities"]
    assert caps == {"bounding": ["CAP_CHOWN", "CAP_NET_ADMIN"], "effective": ["CAP_CHOWN"], "permitted": []}
    assert spec["process"]["oomScoreAdj"] >= int(Path("/proc/self/oom_score_adj").read_text())


def test_background_jobs_run_in_order_and_hand_over_results_and_errors():
    import threading

    order, release = [], threading.Event()

    def slow():
        release.wait(10)
        order.append("slow")
        return 1

    def failing():
        order.append("failing")
        raise Exit("debootstrap failed")

    jobs = Background({"slow": slow, "failing": failing, "last": lambda: order.append("last") or "done"})
    assert not jobs.done("slow") and not jobs.done("last")  # one after another: the rest wait
    release.set()
    assert jobs.result("last") == "done"
    assert order == ["slow", "failing", "last"]
    assert jobs.result("slow") == 1
    with pytest.raises(Exit, match="debootstrap failed"):  # raised where the result is asked for
        jobs.result("failing")


def test_coredns_is_built_with_the_plugins_a_kind_corefile_uses():
    """kubeadm's Corefile (what kind writes) names these directives; each needs its plugin compiled in."""
    corefile_directives = {"errors", "health", "ready", "kubernetes", "prometheus", "forward", "cache", "loop",
                           "reload", "loadbalance"}
    source = gobuild.coredns_main()
    plugin_of = {"prometheus": "metrics"}  # the directive's plugin package
    for directive in corefile_directives:
        assert f'"github.com/coredns/coredns/plugin/{plugin_of.get(directive, directive)}"' in source
    assert '"github.com/coredns/coredns/core/plugin"' not in source  # that one links every plugin
