"""`inv deploy --dev` and `inv dev --cluster`'s live update, against the fake kubectl, kind and docker."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml
from invoke.exceptions import Exit

from meshtools.cluster import live
from meshtools.cluster.target import resolve
from meshtools.shared.topology import MANIFESTS_DIR, PROJECT_ROOT
from tests.cluster.test_status_fake import pod
from tests.support.fakes_harness import Fakes, fakes_for
from tests.support.waiting import wait_for

SERVICE_FILE = PROJECT_ROOT / "service" / "__init__.py"
PODS = {"kind": "List", "items": [
    pod("service1-6f8b-aaaaa", "service1"), pod("service1-6f8b-bbbbb", "service1"),
    pod("service2-5d7f-ccccc", "service2"), pod("trace-proxy-7d8e-ddddd", "trace-proxy", ports=(9411, 4318)),
]}


@pytest.fixture
def fakes(tmp_path, monkeypatch, capsys):
    for made in fakes_for(Fakes, tmp_path, monkeypatch, capsys):
        made.updaters = []  # their exec sessions end with the test
        yield made
        for updater in made.updaters:
            updater.close()


def dev_stack(fakes) -> live.LiveUpdate:
    fakes.inv("cluster.up")
    code, _, err = fakes.inv("build", "deploy", "--dev", "--no-forward")
    assert code == 0, err
    (fakes.state / "pods.json").write_text(json.dumps(PODS))
    updater = live.LiveUpdate(resolve("envoy-tracing"))
    fakes.updaters.append(updater)
    return updater


def execs(fakes, since: int) -> list[tuple[str, dict]]:
    """(pod, what it was sent) of each `kubectl exec` since call number `since`."""
    records = [json.loads(line) for line in fakes.log.read_text().splitlines()][since:]
    return [(r["argv"][r["argv"].index("-i") + 1], json.loads(r["stdin"])) for r in records
            if r["argv"][0] == "kubectl-exec-stdin"]


def applied_overlays(fakes) -> list[list[str]]:
    return [yaml.safe_load(c["kustomization"])["resources"] for c in fakes.calls("kubectl")
            if Fakes.is_call(c, "kubectl", "apply", "-k")]


def test_deploy_applies_the_dev_overlay_only_with_dev_fake(fakes):
    fakes.inv("cluster.up")
    fakes.inv("build", "deploy", "--no-forward")
    assert not live.is_dev_stack(live.stack.open_target(resolve("envoy-tracing")))
    fakes.inv("deploy", "--dev", "--no-forward")
    (plain, dev) = applied_overlays(fakes)
    assert plain[0].endswith("manifests") and dev[0].endswith("manifests/dev")
    assert live.is_dev_stack(live.stack.open_target(resolve("envoy-tracing")))
    code, _, err = fakes.inv("deploy", "--dev", "--variant", "upstream-proxy", "--no-forward")
    assert code == 1 and "--dev applies to the default stack only" in err


def test_once_sessions_are_open_a_change_starts_no_kubectl_fake(fakes):
    updater = dev_stack(fakes)
    updater.prepare()  # what the watcher does when it starts
    wait_for(lambda: len(exec_processes(fakes)) == 4, 10, "a session into each Python pod")  # 2+1 apps, the proxy
    before = len(fakes.log.read_text().splitlines())

    for _ in range(2):
        (line,) = updater.apply([SERVICE_FILE])
        assert "synced into 1 service2 and 2 service1 pod(s)" in line, line

    assert len(exec_processes(fakes)) == 4
    assert not [c for c in fakes.calls("kubectl") if "exec" in c["argv"] and c["argv"][-1] != "serve"], \
        "no one-off kubectl exec for the changes"
    sent = execs(fakes, before)
    assert sorted(p for p, _ in sent) == sorted(["service1-6f8b-aaaaa", "service1-6f8b-bbbbb", "service2-5d7f-ccccc"] * 2)
    updater.close()
    assert not any(session.alive() for session in updater.sessions.values())


def exec_processes(fakes) -> list[list[str]]:
    """The `kubectl exec` processes started so far (a session is one, however many orders it takes)."""
    return [c["argv"] for c in fakes.calls("kubectl") if "exec" in c["argv"] and c["argv"][-1] == "serve"]


def test_a_service_change_is_synced_into_every_app_pod_and_reloaded_without_a_build_fake(fakes):
    updater = dev_stack(fakes)
    before = len(fakes.log.read_text().splitlines())
    calls_before = len(fakes.calls())
    (line,) = updater.apply([SERVICE_FILE, PROJECT_ROOT / "README.md"])
    assert re.fullmatch(r"service/__init__\.py changed → synced into 1 service2 and 2 service1 pod\(s\), gunicorn "
                        r"reloaded in 0\.2 s; served \d+\.\d s after the save", line), line
    sent = execs(fakes, before)
    assert sorted(p for p, _ in sent) == ["service1-6f8b-aaaaa", "service1-6f8b-bbbbb", "service2-5d7f-ccccc"]
    for _, order in sent:
        assert order["files"] == {"service/__init__.py": SERVICE_FILE.read_text()}
        assert order["signal"] == "HUP" and order["root"] == "/srv/dev"
        assert order["health"] == "http://127.0.0.1:8080/healthz"
    new_calls = fakes.calls()[calls_before:]
    assert not fakes.argvs("docker", "build")[1:]  # the one build of dev_stack, none since
    assert not any(Fakes.is_call(c, "kubectl", "apply") or Fakes.is_call(c, "kubectl", "rollout") for c in new_calls)
    assert all(c["argv"][1:3] == ["--context", "kind-envoy-tracing"] for c in new_calls if c["argv"][0] == "kubectl")


def test_a_trace_proxy_master_module_restarts_its_container_other_modules_reload_fake(fakes):
    updater = dev_stack(fakes)
    before = len(fakes.log.read_text().splitlines())
    updater.apply([PROJECT_ROOT / "trace_proxy" / "app.py"])
    ((pod_name, order),) = execs(fakes, before)
    assert pod_name.startswith("trace-proxy-") and order["signal"] == "HUP"
    assert order["health"] == "http://127.0.0.1:9411/healthz"
    before = len(fakes.log.read_text().splitlines())
    updater.apply([PROJECT_ROOT / "trace_proxy" / "server.py"])
    ((_, order),) = execs(fakes, before)
    assert order["signal"] == "TERM"


def test_an_envoy_config_change_rolls_only_the_deployment_that_mounts_it_fake(fakes):
    updater = dev_stack(fakes)
    calls_before = len(fakes.calls())
    before = len(fakes.log.read_text().splitlines())
    (line,) = updater.apply([MANIFESTS_DIR / "base" / "envoy" / "service2-envoy.yaml"])
    assert line.startswith("service2-envoy.yaml changed → ConfigMap updated, service2 rolled (only its pods)"), line
    new_calls = fakes.calls()[calls_before:]
    assert [c for c in new_calls if Fakes.is_call(c, "kubectl", "apply", "-k")]
    assert applied_overlays(fakes)[-1][0].endswith("manifests/dev")
    rolled = [c["argv"][-2] for c in new_calls if Fakes.is_call(c, "kubectl", "rollout", "status")]
    assert rolled == ["deployment/service2"]
    # The new pods start with the image's code: what was synced is sent again.
    sent = execs(fakes, before)
    assert [p for p, _ in sent] == ["service2-5d7f-ccccc"] and "service/__init__.py" in sent[0][1]["files"]


def test_a_dependency_change_falls_back_to_build_and_deploy_and_says_so_fake(fakes):
    updater = dev_stack(fakes)
    applies = len(applied_overlays(fakes))
    (line,) = updater.apply([PROJECT_ROOT / "service.requirements.txt"])
    assert re.match(r"service\.requirements\.txt changed: dependencies are built into the image, so no live "
                    r"update: \S+ changed → built \S+ in \d+\.\d s, deployed and rolled out", line), line
    assert len(applied_overlays(fakes)) == applies + 1
    assert applied_overlays(fakes)[-1][0].endswith("manifests/dev")  # still the dev stack


@pytest.mark.skipif(shutil.which("kubectl") is None or "fakes" in (shutil.which("kubectl") or ""),
                    reason="needs the real kubectl (its built-in kustomize) to render the overlay")
def test_the_dev_overlay_adds_only_the_code_volume_to_the_hardened_pods():
    def deployments(path):
        rendered = subprocess.run(["kubectl", "kustomize", str(path)], capture_output=True, text=True, check=True)
        return {d["metadata"]["name"]: d for d in yaml.safe_load_all(rendered.stdout) if d and d["kind"] == "Deployment"}

    hardened, dev = deployments(MANIFESTS_DIR), deployments(MANIFESTS_DIR / "dev")
    assert not any("code" in json.dumps(d["spec"]["template"]["spec"].get("volumes")) for d in hardened.values())
    assert dev["front-envoy"] == hardened["front-envoy"]
    for name in ("service1", "service2", "trace-proxy"):
        spec, base = dev[name]["spec"]["template"]["spec"], hardened[name]["spec"]["template"]["spec"]
        first = spec["containers"][0]
        assert {"name": "PYTHONPATH", "value": live.CODE_DIR} in first["env"]
        assert {"name": "code", "mountPath": live.CODE_DIR} in first["volumeMounts"]
        assert first["securityContext"] == base["containers"][0]["securityContext"]  # still read-only, no root
        assert spec["securityContext"] == base["securityContext"]
        assert spec["initContainers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    assert dev["service1"]["spec"]["template"]["spec"]["containers"][0]["args"][:2] == \
        ["-c", f"{live.CODE_DIR}/service/gunicorn_conf.py"]


class _Pods:
    """kubectl for `live.sync` alone: `get pods` lists `running`; an exec into any other pod fails
    as kubectl's does for a pod that was deleted."""

    def __init__(self, running: list[str]):
        self.running = running
        self.execs: list[str] = []

    def run(self, *args, input=None, capture=False, check=True, timeout=None):
        if args[:2] == ("get", "pods"):
            return subprocess.CompletedProcess(args, 0, " ".join(self.running), "")
        pod = args[2]
        self.execs.append(pod)
        if pod not in self.running:
            return subprocess.CompletedProcess(args, 1, "", f'Error from server (NotFound): pods "{pod}" not found')
        return subprocess.CompletedProcess(args, 0, "0.31\n", "")


def test_a_sync_starts_on_the_pods_it_knew_passes_over_a_gone_one_and_adds_a_new_one():
    kubectl = _Pods(running=["service1-a", "service1-new"])

    seconds, pods = live.sync(kubectl, "service1", {"service/__init__.py": "x"}, "HUP",
                              known=["service1-a", "service1-gone"])

    assert sorted(kubectl.execs) == ["service1-a", "service1-gone", "service1-new"]
    assert pods == ["service1-a", "service1-new"] and seconds == [0.31, 0.31]


def test_a_sync_that_fails_in_a_running_pod_says_which():
    kubectl = _Pods(running=["service1-a"])
    kubectl.run = lambda *args, **kw: (subprocess.CompletedProcess(args, 0, "service1-a", "") if args[:2] == (
        "get", "pods") else subprocess.CompletedProcess(args, 1, "", "no new worker answered within 30 s"))

    with pytest.raises(Exit, match="service1-a: no new worker answered within 30 s"):
        live.sync(kubectl, "service1", {"service/__init__.py": "x"}, "HUP")
