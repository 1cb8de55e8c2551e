"""The cluster tasks against fake docker, kind and kubectl executables (tests/fakes/).

The fakes record every argv (and kubectl's stdin) and answer like the real tools, so these
tests show what a developer's machine would be asked to run: nothing here needs Docker.
"""
from __future__ import annotations

import json
import re
import socket

import pytest
from invoke.exceptions import Exit

from meshtools.cluster import forward as port_forward
from meshtools.cluster import image
from meshtools.shared.net import free_port
from meshtools.tasks import options
from tests.support.fakes_harness import KEY, Fakes, answers, fakes_for


@pytest.fixture
def fakes(tmp_path, monkeypatch, capsys):
    yield from fakes_for(Fakes, tmp_path, monkeypatch, capsys)


def test_cluster_up_twice_creates_the_cluster_once_fake(fakes):
    first = fakes.inv("cluster.up")
    second = fakes.inv("cluster.up")

    assert first[0] == 0 and second[0] == 0
    creates = fakes.argvs("kind", "create", "cluster")
    assert len(creates) == 1
    assert creates[0][creates[0].index("--config") + 1].endswith("kind-config.yaml")
    assert creates[0][creates[0].index("--name") + 1] == "envoy-tracing"
    assert "already exists" in second[1]
    # Both runs wait for the node to be Ready.
    assert len(fakes.argvs("kubectl", "wait")) == 2


def test_cluster_up_leaves_the_current_kubectl_context_alone_fake(fakes):
    code, out, _ = fakes.inv("cluster.up")

    assert code == 0
    assert "current-context: production" in fakes.kubeconfig.read_text()
    assert "production" in out


def test_build_deploy_builds_loads_and_applies_the_same_tag_fake(fakes):
    fakes.inv("cluster.up")
    code, out, err = fakes.inv("build", "deploy", "--no-forward")

    assert code == 0, err
    (build,) = fakes.argvs("docker", "build")
    ref = build[build.index("--tag") + 1]
    assert re.fullmatch(rf"{image.IMAGE_NAME}:[0-9a-f]{{12}}", ref)
    (load,) = fakes.argvs("kind", "load", "docker-image")
    assert load[3] == ref and load[load.index("--name") + 1] == "envoy-tracing"
    (apply,) = [c for c in fakes.calls("kubectl") if "-k" in c["argv"]]
    name, tag = ref.rsplit(":", 1)
    assert f"newName: {name}" in apply["kustomization"] and f"newTag: {tag}" in apply["kustomization"]
    assert ref in out
    rolled = [argv[-2] for argv in fakes.argvs("kubectl", "rollout", "status")]
    assert rolled == ["deployment/trace-proxy", "deployment/service2", "deployment/service1", "deployment/front-envoy"]
    assert fakes.argvs("kubectl", "get", "pods")


def test_build_reuses_the_image_when_sources_are_unchanged_fake(fakes):
    fakes.inv("cluster.up")
    fakes.inv("build")
    code, out, _ = fakes.inv("build")

    assert code == 0
    assert len(fakes.argvs("docker", "build")) == 1
    loads = fakes.argvs("kind", "load", "docker-image")
    assert len(loads) == 2 and loads[0][3] == loads[1][3]
    assert "up to date" in out


def test_every_kubectl_call_names_the_kind_context_fake(fakes, monkeypatch):
    monkeypatch.setenv("HONEYCOMB_API_KEY", KEY)
    port1, port2 = free_port(), free_port()
    for argv in (
        ("cluster.up", "--name", "demo"),
        ("build", "--name", "demo", "deploy", "--name", "demo", "--no-forward"),
        ("secret", "--name", "demo"),
        ("forward", "--name", "demo", "--front-port", str(port1), "--trace-proxy-port", str(port2)),
        ("cluster.status", "--name", "demo"),
        ("cluster.down", "--name", "demo"),
    ):
        code, _, err = fakes.inv(*argv)
        assert code == 0, (argv, err)

    kubectl_calls = fakes.calls("kubectl")
    assert len(kubectl_calls) > 10
    for call in kubectl_calls:
        assert call["argv"][1:3] == ["--context", "kind-demo"], call["argv"]


def test_cluster_name_comes_from_invoke_config_fake(fakes):
    code, _, _ = fakes.inv("cluster.up", configure={"cluster": {"name": "from-config"}})

    assert code == 0
    assert fakes.argvs("kind", "create", "cluster")[0][-3] == "from-config"
    assert all(c["argv"][2] == "kind-from-config" for c in fakes.calls("kubectl"))


def test_the_honeycomb_key_reaches_kubectl_only_on_stdin_fake(fakes, monkeypatch):
    monkeypatch.setenv("HONEYCOMB_API_KEY", KEY)
    outputs = []
    for argv in (("cluster.up",), ("build", "deploy", "--no-forward"), ("secret",)):
        code, out, err = fakes.inv(*argv)
        assert code == 0, err
        outputs += [out, err]

    for call in fakes.calls():
        assert KEY not in " ".join(call["argv"])
    creates = [c for c in fakes.calls("kubectl") if "create" in c["argv"] and "secret" in c["argv"]]
    assert creates and all(c["stdin"] == KEY for c in creates)
    assert KEY not in "".join(outputs)
    # `secret` with the key deploy already stored leaves the trace proxy (and its spans) alone.
    assert "already holds this Honeycomb key" in outputs[-2]
    assert not fakes.argvs("kubectl", "rollout", "restart")


def test_secret_restarts_the_trace_proxy_only_when_the_key_changed_fake(fakes, monkeypatch):
    fakes.inv("cluster.up")
    fakes.inv("build", "deploy", "--no-forward")  # no key yet: spans stay local

    def restarts() -> int:
        return len(fakes.argvs("kubectl", "rollout", "restart"))

    monkeypatch.setenv("HONEYCOMB_API_KEY", KEY)
    code, out, err = fakes.inv("secret")
    assert code == 0, err
    assert "Restarted deployment/trace-proxy" in out and restarts() == 1

    code, out, err = fakes.inv("secret")  # the same key again
    assert code == 0, err
    assert "already holds this Honeycomb key" in out and "Restarted" not in out
    assert restarts() == 1

    monkeypatch.setenv("HONEYCOMB_API_KEY", KEY[::-1])
    code, out, err = fakes.inv("secret")
    assert code == 0, err
    assert "Restarted deployment/trace-proxy" in out and restarts() == 2
    assert [c["stdin"] for c in fakes.calls("kubectl") if "create" in c["argv"]] == [KEY, KEY, KEY[::-1]]


def test_the_seeds_writekey_variable_works_too_fake(fakes, monkeypatch):
    monkeypatch.setenv("HONEYCOMB_WRITEKEY", KEY)
    fakes.inv("cluster.up")
    code, out, _ = fakes.inv("secret")

    assert code == 0 and "Stored" in out
    assert [c["stdin"] for c in fakes.calls("kubectl") if "create" in c["argv"]] == [KEY]


def test_secret_without_a_key_says_spans_stay_local_and_goes_on_fake(fakes):
    fakes.inv("cluster.up")
    code, out, _ = fakes.inv("secret")

    assert code == 0
    assert "spans stay local" in out
    assert not fakes.argvs("kubectl", "create", "secret")


def test_deploy_without_a_key_still_deploys_fake(fakes):
    fakes.inv("cluster.up")
    code, out, _ = fakes.inv("build", "deploy", "--no-forward")

    assert code == 0
    assert "spans stay local" in out
    assert len(fakes.argvs("kubectl", "rollout", "status")) == 4


@pytest.mark.parametrize("present, missing", [
    (("docker",), ("kind", "kubectl")),
    (("kind", "kubectl"), ("docker",)),
    (("docker", "kind"), ("kubectl",)),
])
def test_missing_tools_give_one_line_and_a_non_zero_exit_fake(fakes, present, missing):
    fakes.install(*present)
    code, out, err = fakes.inv("cluster.up")

    assert code != 0
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1
    for tool in missing:
        assert tool in lines[0]
    assert "install" in lines[0] and "https://" in lines[0]
    assert not fakes.argvs("kind", "create")


def test_a_stopped_docker_daemon_gives_one_line_and_a_non_zero_exit_fake(fakes, monkeypatch):
    monkeypatch.setenv("FAKE_DOCKER_DAEMON", "down")
    for argv in (("cluster.up",), ("build",)):
        code, out, err = fakes.inv(*argv)

        assert code != 0
        assert "Traceback" not in out + err
        (line,) = err.strip().splitlines()
        assert "daemon" in line and "start Docker" in line
    assert not fakes.argvs("kind", "create")


def test_deploy_before_build_says_to_build_first_fake(fakes):
    fakes.inv("cluster.up")
    code, _, err = fakes.inv("deploy", "--no-forward")

    assert code != 0
    assert err.strip() == "No image built yet: run `inv build` first (or `inv build deploy`)."


def test_tasks_without_a_cluster_say_to_create_it_fake(fakes):
    for argv in (("build",), ("deploy",), ("secret",)):
        code, out, err = fakes.inv(*argv)

        assert code != 0
        assert "inv cluster.up" in err and "Traceback" not in out + err


def test_unknown_variant_is_refused_fake(fakes):
    code, _, err = fakes.inv("deploy", "--variant", "nope")

    assert code != 0 and "default, upstream-proxy" in err


def test_deploy_applies_the_upstream_proxy_overlay_on_request_fake(fakes):
    fakes.inv("cluster.up")
    fakes.inv("build")
    code, _, _ = fakes.inv("deploy", "--variant", "upstream-proxy", "--no-forward")

    assert code == 0
    (apply,) = [c for c in fakes.calls("kubectl") if "-k" in c["argv"]]
    assert "upstream-proxy" in apply["kustomization"]


def test_forward_runs_in_the_background_and_stop_ends_it_fake(fakes):
    fakes.inv("cluster.up")
    front, proxy = free_port(), free_port()
    code, out, err = fakes.inv("forward", "--front-port", str(front), "--trace-proxy-port", str(proxy))

    assert code == 0, err
    records = json.loads((fakes.mesh / "forward.json").read_text())
    assert {(r["service"], r["local_port"], r["remote_port"]) for r in records} == {
        ("front-envoy", front, 80), ("trace-proxy", proxy, 9411)}
    assert answers(front) and answers(proxy)
    pids = [r["pid"] for r in records]

    code, out, _ = fakes.inv("cluster.status")
    assert code == 0 and f"127.0.0.1:{front}" in out and "answering" in out

    code, out, _ = fakes.inv("forward", "--stop")
    assert code == 0 and out.count("Stopped port-forward") == 2
    assert not any(port_forward.alive(pid) for pid in pids)
    assert not answers(front) and not answers(proxy)
    assert not (fakes.mesh / "forward.json").exists()


@pytest.mark.parametrize("variant, forwards_otlp", [("default", True), ("upstream-proxy", False)])
def test_forward_adds_the_trace_proxys_otlp_port_when_it_has_one_fake(fakes, variant, forwards_otlp):
    fakes.inv("cluster.up")
    fakes.inv("build")
    code, _, err = fakes.inv("deploy", "--variant", variant, "--no-forward")
    assert code == 0, err
    front, proxy, otlp = free_port(), free_port(), free_port()

    code, out, err = fakes.inv("forward", "--front-port", str(front), "--trace-proxy-port", str(proxy),
                               "--otlp-port", str(otlp))

    assert code == 0, err
    records = {(r["service"], r["local_port"], r["remote_port"])
               for r in json.loads((fakes.mesh / "forward.json").read_text())}
    assert (("trace-proxy", otlp, 4318) in records) == forwards_otlp  # the seed's proxy takes no OTLP
    assert answers(otlp) == forwards_otlp
    assert (f"http://127.0.0.1:{otlp}/v1/traces" in out) == forwards_otlp
    fakes.inv("forward", "--stop")


def test_the_zipkin_ui_variant_rolls_out_zipkin_and_forward_adds_its_ui_fake(fakes):
    fakes.inv("cluster.up")
    fakes.inv("build")
    code, _, err = fakes.inv("deploy", "--variant", "zipkin-ui", "--no-forward")
    assert code == 0, err
    (apply,) = [c for c in fakes.calls("kubectl") if "-k" in c["argv"]]
    assert "zipkin-ui" in apply["kustomization"]
    assert fakes.argvs("kubectl", "rollout", "status", "deployment/zipkin")

    front, proxy, zipkin = free_port(), free_port(), free_port()
    code, out, err = fakes.inv("forward", "--front-port", str(front), "--trace-proxy-port", str(proxy),
                               "--zipkin-ui-port", str(zipkin))
    assert code == 0, err
    records = json.loads((fakes.mesh / "forward.json").read_text())
    assert ("zipkin", zipkin, 9411) in {(r["service"], r["local_port"], r["remote_port"]) for r in records}
    assert answers(zipkin)
    assert f"Zipkin's own UI: http://127.0.0.1:{zipkin}/zipkin/" in out
    assert f"Traces in your browser: http://127.0.0.1:{proxy}/" in out
    fakes.inv("forward", "--stop")


def test_cluster_down_ends_the_forwards_and_deletes_the_cluster_fake(fakes):
    fakes.inv("cluster.up")
    front, proxy = free_port(), free_port()
    fakes.inv("forward", "--front-port", str(front), "--trace-proxy-port", str(proxy))
    pids = [r["pid"] for r in json.loads((fakes.mesh / "forward.json").read_text())]

    code, out, _ = fakes.inv("cluster.down")

    assert code == 0
    assert not any(port_forward.alive(pid) for pid in pids)
    assert fakes.argvs("kind", "delete", "cluster")
    assert "Deleted cluster" in out


def test_forward_refuses_a_port_already_in_use_fake(fakes):
    fakes.inv("cluster.up")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = fakes.inv("forward", "--front-port", str(port), "--trace-proxy-port", str(free_port()))

    assert code != 0
    assert f"127.0.0.1:{port} already in use" in err
    assert not fakes.argvs("kubectl", "port-forward")


def test_cluster_down_is_fine_when_there_is_no_cluster_fake(fakes):
    code, out, _ = fakes.inv("cluster.down")

    assert code == 0
    assert "nothing to delete" in out


def test_status_without_a_cluster_says_how_to_create_it_and_exits_3_fake(fakes):
    code, out, err = fakes.inv("cluster.status")

    assert code == 3 and "inv cluster.up" in out and not err


def test_status_exits_3_when_kind_docker_or_the_daemon_is_missing_fake(fakes, monkeypatch):
    fakes.inv("cluster.up")
    for tools, daemon, said in (
        (("docker", "kubectl"), "up", "kind is not installed"),
        (("kind", "kubectl"), "up", "docker is not installed"),
        (("docker", "kind", "kubectl"), "down", "daemon is not answering"),
    ):
        fakes.install(*tools)
        monkeypatch.setenv("FAKE_DOCKER_DAEMON", daemon)
        code, out, err = fakes.inv("cluster.status")

        assert code == 3, (tools, daemon, err)
        assert said in out and "Traceback" not in out + err


def _cluster_with_forwards(fakes) -> list[int]:
    fakes.inv("cluster.up")
    code, _, err = fakes.inv("forward", "--front-port", str(free_port()), "--trace-proxy-port", str(free_port()))
    assert code == 0, err
    return [r["pid"] for r in json.loads((fakes.mesh / "forward.json").read_text())]


@pytest.mark.parametrize("tools, missing", [(("docker", "kubectl"), "kind"), (("kind", "kubectl"), "docker")])
def test_cluster_down_without_kind_or_docker_stops_the_forwards_and_exits_0_fake(fakes, tools, missing):
    pids = _cluster_with_forwards(fakes)
    fakes.install(*tools)
    code, out, err = fakes.inv("cluster.down")

    assert code == 0, err
    assert f"{missing} is not installed" in out and "nothing to delete" in out
    assert not any(port_forward.alive(pid) for pid in pids)
    assert not fakes.argvs("kind", "delete")


def test_cluster_down_with_a_stopped_docker_daemon_says_to_start_it_and_fails_fake(fakes, monkeypatch):
    pids = _cluster_with_forwards(fakes)
    monkeypatch.setenv("FAKE_DOCKER_DAEMON", "down")
    code, out, err = fakes.inv("cluster.down")

    # The cluster may still exist (it comes back with Docker), so `down` has not done its job.
    assert code == 1
    (line,) = err.strip().splitlines()
    assert "daemon is not answering" in line and "start Docker" in line and "run this again" in line
    assert not any(port_forward.alive(pid) for pid in pids)
    assert not fakes.argvs("kind", "delete")


@pytest.mark.parametrize("value, said", [
    ("abc", "must be a whole number, got 'abc'"),
    ("8000.5", "must be a whole number"),
    ("-5", "must be between 1 and 65535, got -5"),
    ("0", "must be between 1 and 65535, got 0"),
    ("65536", "must be between 1 and 65535, got 65536"),
])
@pytest.mark.parametrize("flag", ["--front-port", "--trace-proxy-port"])
def test_forward_refuses_a_port_that_is_not_one_in_one_sentence_fake(fakes, flag, value, said):
    code, out, err = fakes.inv("forward", f"{flag}={value}")

    assert code == 1
    assert "Traceback" not in out + err
    (line,) = err.strip().splitlines()
    assert line.startswith(f"{flag} {said}")
    assert not fakes.calls()  # refused before any tool runs


def test_port_options_accept_strings_and_ints_and_leave_unset_alone():
    assert options.port(" 8080 ", "--p") == 8080
    assert options.port(65535, "--p") == 65535
    assert options.port(None, "--p") is None
    assert options.whole_number("0", "--n", minimum=0) == 0
    with pytest.raises(Exit, match="--n must be at least 1, got 0"):
        options.whole_number("0", "--n", minimum=1)


def test_content_tag_follows_the_sources(tmp_path):
    root = tmp_path / "tree"
    (root / "service").mkdir(parents=True)
    (root / "trace_proxy").mkdir()
    (root / "service" / "app.py").write_text("print('a')\n")
    (root / "trace_proxy" / "app.py").write_text("print('b')\n")
    (root / "pyproject.toml").write_text("[project]\n")
    (root / "service.Dockerfile").write_text("FROM scratch\n")
    (root / "notes.txt").write_text("not in the image\n")
    first = image.content_tag(root)

    (root / "service" / "__pycache__").mkdir()
    (root / "service" / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0")
    (root / "notes.txt").write_text("changed, still not in the image\n")
    assert image.content_tag(root) == first

    (root / "service" / "app.py").write_text("print('changed')\n")
    changed = image.content_tag(root)
    assert changed != first and len(changed) == 12
    (root / "service.Dockerfile").write_text("FROM scratch\nUSER 1\n")
    dockerfile_changed = image.content_tag(root)
    assert dockerfile_changed not in (first, changed)
    (root / "service.requirements.txt").write_text("flask==3.1.3\n")
    locked = image.content_tag(root)
    assert locked != dockerfile_changed
    (root / "service.requirements.txt").write_text("flask==3.1.4\n")  # a new release, locked
    relocked = image.content_tag(root)
    assert relocked != locked
    assert image.content_tag(root, "sha256:" + "1" * 64) != relocked  # a new base image
    assert image.content_tag(root, "sha256:" + "1" * 64) == image.content_tag(root, "sha256:" + "1" * 64)


def test_build_falls_back_to_an_image_archive_on_the_containerd_store_issue_fake(fakes, monkeypatch):
    fakes.inv("cluster.up")
    monkeypatch.setenv("FAKE_KIND_CONTENT_DIGEST_BUG", "1")
    code, out, err = fakes.inv("build")

    assert code == 0, err
    ref = image.last_built()
    (save,) = fakes.argvs("docker", "image", "save")
    assert save[save.index("--platform") + 1] == "linux/amd64" and save[-1] == ref
    assert fakes.argvs("kind", "load", "image-archive")
    state = json.loads((fakes.state / "state.json").read_text())
    assert state["clusters"]["envoy-tracing"]["images"] == [ref]


def test_the_image_archive_fallback_works_on_docker_api_1_41_fake(fakes, monkeypatch):
    """Docker 20.10–27 refuse `image save --platform` (API 1.48); the fallback saves without it."""
    fakes.inv("cluster.up")
    monkeypatch.setenv("FAKE_KIND_CONTENT_DIGEST_BUG", "1")
    monkeypatch.setenv("FAKE_DOCKER_API", "1.41")
    code, out, err = fakes.inv("build")

    assert code == 0, err
    (save,) = fakes.argvs("docker", "image", "save")
    assert "--platform" not in save and save[-1] == image.last_built()
    state = json.loads((fakes.state / "state.json").read_text())
    assert state["clusters"]["envoy-tracing"]["images"] == [image.last_built()]


def test_missing_tools_are_named_together_with_the_install_for_this_os_fake(fakes, monkeypatch):
    # A newcomer on Linux was told `brew install kind`, and learnt of one missing tool per run.
    fakes.install()
    monkeypatch.setattr("platform.system", lambda: "Linux")
    code, _, err = fakes.inv("cluster.up")
    assert code == 1 and "Traceback" not in err
    assert err.startswith("docker, kind and kubectl are not on PATH: install Docker Engine")
    assert "brew" not in err and "install-kubectl-linux" in err
    monkeypatch.setattr("platform.system", lambda: "Darwin")
    code, _, err = fakes.inv("build")
    assert err.startswith("docker and kind are not on PATH") and "`brew install kind`" in err
    assert "apt-get" not in err and err.strip().endswith("inv build --no-load.")
    code, out, _ = fakes.inv("cluster.status")
    assert code == 3 and "kind and docker are not installed" in out
