"""The tasks on a shared cluster (`--context`, `--namespace`, `--registry`) against the fake
kubectl, kind and docker (tests/support/fakes/) and a stand-in for the docker SDK's push.

What a user of a shared cluster relies on: the guard refuses a context nobody allowed before
anything runs; every kubectl call names the context and the namespace; the image applied is
the one pushed; the key goes on stdin; `inv down` removes exactly the stack's labelled objects
and never a cluster.
"""
from __future__ import annotations

import pytest
import yaml
from invoke import Collection

import tasks
from meshtools.cluster import registry
from meshtools.cluster.target import DEFAULT_REMOTE_NAMESPACE, STACK_LABELS
from meshtools.shared.net import free_port
from tests.support.fakes_harness import KEY, FakeDockerSDK, Fakes, answers, fakes_for

CONTEXT = "gke_acme_europe-west1_shared"
SERVER = "https://34.0.0.1.example.test"
NAMESPACE = "tracing-demo"
REGISTRY = "registry.example.test:5000/team"
ALLOWED = {"cluster": {"allowed_contexts": [CONTEXT]}}
TARGET = ("--context", CONTEXT, "--namespace", NAMESPACE)


class SharedFakes(Fakes):
    def __init__(self, *args):
        super().__init__(*args)
        self.add_context(CONTEXT, SERVER)
        self.add_context("production", "https://prod.example.test")  # the kubeconfig's current context
        self.sdk = FakeDockerSDK(self)
        self.monkeypatch.setattr(registry, "docker_client", lambda: self.sdk)

    def namespace(self, configure: dict | None = None) -> Collection:
        """The real task tree of tasks.py, with `configure` merged into its settings."""
        ns = Collection()
        for sub in tasks.ns.collections.values():
            ns.add_collection(sub)
        for name, task in tasks.ns.tasks.items():
            ns.add_task(task, name)
        ns.configure(tasks.ns.configuration())
        if configure:
            ns.configure(configure)
        return ns

    def ports(self) -> tuple[str, ...]:
        return ("--front-port", str(free_port()), "--trace-proxy-port", str(free_port()),
                "--otlp-port", str(free_port()))


@pytest.fixture
def fakes(tmp_path, monkeypatch, capsys):
    yield from fakes_for(SharedFakes, tmp_path, monkeypatch, capsys)


def shared_up(fakes, *extra: str) -> tuple[int, str, str]:
    return fakes.inv("up", *TARGET, "--registry", REGISTRY, *fakes.ports(), *extra, configure=ALLOWED)


@pytest.mark.parametrize("argv", [
    ("build", "--registry", REGISTRY),
    ("deploy", "--registry", REGISTRY),
    ("up", "--registry", REGISTRY),
    ("down",),
    ("secret",),
    ("forward",),
    ("cluster.status",),
])
def test_a_context_nobody_allowed_is_refused_before_any_call_fake(fakes, argv):
    code, out, err = fakes.inv(argv[0], "--context", CONTEXT, *argv[1:])

    assert code == 1
    assert "Traceback" not in out + err
    (line,) = err.strip().splitlines()
    assert f"Context {CONTEXT!r}" in line and "cluster.allowed_contexts" in line and "--allow-context" in line
    assert not fakes.calls() and not fakes.sdk.pushes


def test_the_current_context_is_never_used_without_being_named_fake(fakes):
    # cluster.context unset: the kind cluster is the target, whatever the kubeconfig's current context.
    code, _, err = fakes.inv("up", *fakes.ports(), configure={"cluster": {"allowed_contexts": ["production"]}})

    assert code == 0, err
    contexts = {call["argv"][2] for call in fakes.calls("kubectl")}
    assert contexts == {"kind-envoy-tracing"}


def test_the_target_is_named_before_anything_changes_fake(fakes):
    code, out, err = shared_up(fakes)

    assert code == 0, err
    first_line = out.splitlines()[0]
    assert first_line == f"Target: context {CONTEXT} · server {SERVER} · namespace {NAMESPACE}"
    calls = fakes.calls()
    named = next(i for i, c in enumerate(calls) if fakes.is_call(c, "kubectl", "config", "view"))
    # Only read-only probes (docker info) come before the target is named; the build, the push
    # after it and every kubectl change come later.
    assert [c["argv"][:2] for c in calls[:named]] == [["docker", "info"]]
    changes = [i for i, c in enumerate(calls) if c["argv"][:2] == ["docker", "build"]
               or any(fakes.is_call(c, "kubectl", verb) for verb in ("create", "apply", "delete", "rollout"))]
    assert changes and min(changes) > named


def test_every_call_names_the_context_and_the_namespace_and_kind_is_never_run_fake(fakes, monkeypatch):
    monkeypatch.setenv("HONEYCOMB_API_KEY", KEY)
    front, proxy, otlp = free_port(), free_port(), free_port()
    for argv in (
        ("build", "--registry", REGISTRY, "--context", CONTEXT),
        ("deploy", *TARGET, "--registry", REGISTRY, "--no-forward"),
        ("secret", *TARGET),
        ("forward", *TARGET, "--front-port", str(front), "--trace-proxy-port", str(proxy),
         "--otlp-port", str(otlp)),
        ("cluster.status", *TARGET),
        ("down", *TARGET),
    ):
        code, _, err = fakes.inv(*argv, configure=ALLOWED)
        assert code == 0, (argv, err)

    kubectl = fakes.calls("kubectl")
    assert len(kubectl) > 15
    for call in kubectl:
        assert call["argv"][1:5] == ["--context", CONTEXT, "--namespace", NAMESPACE], call["argv"]
    assert not fakes.calls("kind")
    # front-envoy, the trace proxy's UI and its OTLP/HTTP port: one port-forward each.
    forwarded = fakes.argvs("kubectl", "port-forward")
    local_ports = sorted(int(argv[-1].split(":")[0]) for argv in forwarded)
    assert local_ports == sorted((front, proxy, otlp)), forwarded
    # Status lists only the stack's pods: other teams' may share the namespace.
    (pods,) = [argv for argv in fakes.argvs("kubectl", "get", "pods") if "--selector" in argv]
    assert pods[pods.index("--selector") + 1] == ",".join(f"{k}={v}" for k, v in STACK_LABELS.items())


def test_the_namespace_is_created_labelled_when_missing_and_an_existing_one_is_left_alone_fake(fakes):
    code, out, err = shared_up(fakes)
    assert code == 0, err
    (create,) = [c for c in fakes.calls("kubectl") if fakes.is_call(c, "kubectl", "create", "-f", "-")]
    namespace = yaml.safe_load(create["stdin"])
    assert namespace["kind"] == "Namespace" and namespace["metadata"] == {"name": NAMESPACE, "labels": STACK_LABELS}
    assert f"Created namespace {NAMESPACE}." in out

    fakes.add_object("namespace", "team-b", None, {"owner": "team-b"})
    code, out, err = fakes.inv("up", "--context", CONTEXT, "--namespace", "team-b", "--registry", REGISTRY,
                               *fakes.ports(), configure=ALLOWED)
    assert code == 0, err
    assert len([c for c in fakes.calls("kubectl") if fakes.is_call(c, "kubectl", "create", "-f", "-")]) == 1
    assert "Created namespace" not in out


def test_the_default_namespace_on_a_shared_cluster_is_the_projects_own_fake(fakes):
    code, _, err = fakes.inv("up", "--context", CONTEXT, "--registry", REGISTRY, *fakes.ports(), configure=ALLOWED)

    assert code == 0, err
    assert {c["argv"][4] for c in fakes.calls("kubectl")} == {DEFAULT_REMOTE_NAMESPACE}


def test_the_applied_image_is_the_one_pushed_fake(fakes):
    code, out, err = fakes.inv("build", "--registry", REGISTRY, "--context", CONTEXT, configure=ALLOWED)
    assert code == 0, err
    (push,) = fakes.sdk.pushes
    assert push["repository"] == f"{REGISTRY}/envoy-tracing/service"
    # No credentials handed over: the SDK takes them from the user's Docker config.
    assert push["auth_config"] is None
    (built,) = fakes.argvs("docker", "build")
    local_ref = built[built.index("--tag") + 1]
    assert fakes.sdk.tags == [(local_ref, push["repository"], local_ref.rsplit(":", 1)[1])]
    assert not fakes.argvs("kind", "load")
    assert f"Pushed {push['repository']}:{push['tag']} (3 new layers, 0 already there" in out

    code, _, err = fakes.inv("deploy", *TARGET, "--registry", REGISTRY, "--no-forward", configure=ALLOWED)
    assert code == 0, err
    (apply,) = [c for c in fakes.calls("kubectl") if "-k" in c["argv"]]
    overlay = yaml.safe_load(apply["kustomization"])
    assert overlay["images"] == [{"name": "envoy-tracing/service", "newName": push["repository"],
                                  "newTag": push["tag"]}]
    assert overlay["namespace"] == NAMESPACE
    assert overlay["labels"] == [{"pairs": STACK_LABELS, "includeTemplates": True}]
    assert overlay["components"][0].endswith("manifests/shared-cluster")
    assert len(fakes.argvs("kubectl", "rollout", "status")) == 4


def test_a_second_build_of_an_unchanged_tree_sends_no_layer_again_fake(fakes):
    for _ in range(2):
        code, out, err = fakes.inv("build", "--registry", REGISTRY)
        assert code == 0, err

    assert len(fakes.argvs("docker", "build")) == 1
    assert "(0 new layers, 3 already there" in out


def test_deploy_before_a_push_to_that_registry_says_to_push_fake(fakes):
    code, _, err = fakes.inv("deploy", *TARGET, "--registry", REGISTRY, configure=ALLOWED)

    assert code == 1
    assert err.strip() == f"No image pushed to {REGISTRY} yet: run `inv build --registry {REGISTRY}` first."
    assert not fakes.calls()


@pytest.mark.parametrize("argv", [("deploy", *TARGET), ("up", *TARGET), ("build", "--context", CONTEXT)])
def test_a_shared_cluster_without_a_registry_is_refused_in_one_sentence_fake(fakes, argv):
    code, out, err = fakes.inv(*argv, configure=ALLOWED)

    assert code == 1 and "Traceback" not in out + err
    (line,) = err.strip().splitlines()
    assert "--registry" in line and "cluster.registry" in line
    assert not fakes.calls()


def test_a_failed_push_ends_in_one_sentence_fake(fakes):
    fakes.sdk.fail = "unauthorized: authentication required"
    code, out, err = fakes.inv("build", "--registry", REGISTRY)

    assert code == 1 and "Traceback" not in out + err
    (line,) = err.strip().splitlines()
    assert "unauthorized: authentication required" in line and "docker login" in line


def test_the_key_goes_on_stdin_into_a_labelled_secret_in_the_namespace_fake(fakes, monkeypatch):
    monkeypatch.setenv("HONEYCOMB_API_KEY", KEY)
    code, out, err = shared_up(fakes)
    assert code == 0, err

    for call in fakes.calls():
        assert KEY not in " ".join(call["argv"])
    (create,) = fakes.argvs("kubectl", "create", "secret")
    assert create[1:5] == ["--context", CONTEXT, "--namespace", NAMESPACE]
    assert [c["stdin"] for c in fakes.calls("kubectl") if "generic" in c["argv"]] == [KEY]
    (applied,) = [c for c in fakes.calls("kubectl") if fakes.is_call(c, "kubectl", "apply", "-f", "-")]
    assert yaml.safe_load(applied["stdin"])["metadata"]["labels"] == STACK_LABELS
    assert ("secret", "honeycomb-writekey", NAMESPACE) in fakes.objects(NAMESPACE)
    assert KEY not in out + err


def test_down_deletes_only_the_labelled_objects_in_that_namespace_and_no_cluster_fake(fakes):
    fakes.inv("cluster.up")  # a kind cluster exists too: down on the shared cluster must not touch it
    code, _, err = shared_up(fakes)
    assert code == 0, err
    # Someone else's things: in the same namespace unlabelled, and the stack's labels elsewhere.
    fakes.add_object("deployment", "their-app", NAMESPACE, {"app": "their-app"})
    fakes.add_object("configmap", "their-config", NAMESPACE,
                     {"app.kubernetes.io/part-of": "envoy-tracing"})  # a hand-run apply -k: not the tasks'
    fakes.add_object("namespace", "other-team", None)
    fakes.add_object("deployment", "front-envoy", "other-team", dict(STACK_LABELS))
    stack = {o for o in fakes.objects(NAMESPACE) if o[1] not in ("their-app", "their-config")}
    assert len(stack) == 4 + 4 + 3 + 1  # Deployments, Services, ConfigMaps, NetworkPolicy: the whole stack
    before_kind = len(fakes.calls("kind"))

    code, out, err = fakes.inv("down", *TARGET, configure=ALLOWED)

    assert code == 0, err
    assert fakes.objects(NAMESPACE) == {("deployment", "their-app", NAMESPACE),
                                        ("configmap", "their-config", NAMESPACE)}
    assert ("deployment", "front-envoy", "other-team") in fakes.objects("other-team")
    assert ("namespace", NAMESPACE, None) in fakes.objects()  # the namespace stays
    assert len(fakes.calls("kind")) == before_kind  # kind never runs, let alone `kind delete`
    assert "envoy-tracing" in fakes.state_data()["clusters"]
    (delete,) = fakes.argvs("kubectl", "delete")
    assert delete[1:5] == ["--context", CONTEXT, "--namespace", NAMESPACE]
    assert delete[delete.index("--selector") + 1] == ",".join(f"{k}={v}" for k, v in STACK_LABELS.items())
    assert "Deleted deployment.apps/front-envoy." in out
    assert f"Namespace {NAMESPACE} stays: it holds other things too (deployment.apps/their-app" in out


def test_down_deletes_the_namespace_it_created_once_nothing_else_is_in_it_fake(fakes):
    fakes.add_object("namespace", "other-team", None)
    code, out, err = shared_up(fakes)
    assert code == 0, err
    assert f"Created namespace {NAMESPACE}." in out

    code, out, err = fakes.inv("down", *TARGET, configure=ALLOWED)

    assert code == 0, err
    assert ("namespace", NAMESPACE, None) not in fakes.objects()
    assert ("namespace", "other-team", None) in fakes.objects()
    assert f"Deleted namespace {NAMESPACE} (created by the tasks)." in out
    (delete,) = fakes.argvs("kubectl", "delete", "namespace")
    assert delete[1:3] == ["--context", CONTEXT]


def test_down_never_deletes_a_namespace_it_did_not_create_fake(fakes):
    fakes.add_object("namespace", NAMESPACE, None)  # the team's own, empty but for the stack
    code, out, err = shared_up(fakes)
    assert code == 0, err
    assert "Created namespace" not in out

    code, out, err = fakes.inv("down", *TARGET, configure=ALLOWED)

    assert code == 0, err
    assert fakes.objects(NAMESPACE) == set()
    assert ("namespace", NAMESPACE, None) in fakes.objects()
    assert f"Namespace {NAMESPACE} stays: the tasks did not create it." in out
    assert not fakes.argvs("kubectl", "delete", "namespace")


def test_down_stops_the_port_forwards_to_the_shared_cluster_fake(fakes):
    front, proxy, otlp = free_port(), free_port(), free_port()
    code, out, err = fakes.inv("up", *TARGET, "--registry", REGISTRY, "--front-port", str(front),
                               "--trace-proxy-port", str(proxy), "--otlp-port", str(otlp), configure=ALLOWED)
    assert code == 0, err
    assert answers(front) and answers(proxy) and answers(otlp)
    assert f"OTLP/HTTP for your own OpenTelemetry SDKs: http://127.0.0.1:{otlp}/v1/traces" in out

    code, out, err = fakes.inv("down", *TARGET, configure=ALLOWED)

    assert code == 0, err
    assert not answers(front) and not answers(proxy) and not answers(otlp)


def test_up_on_a_shared_cluster_says_how_to_reach_and_remove_it_fake(fakes):
    code, out, _ = shared_up(fakes)

    assert code == 0
    assert f"Running in namespace {NAMESPACE} of context {CONTEXT}" in out
    assert f"inv down --context {CONTEXT} --namespace {NAMESPACE}" in out
    assert not fakes.calls("kind")


@pytest.mark.parametrize("flags, variant", [
    (("--variant", "upstream-proxy"), "upstream-proxy"),
    (("--tracer", "opentelemetry"), "opentelemetry"),
])
def test_the_variants_go_to_the_shared_cluster_too_fake(fakes, flags, variant):
    code, _, err = shared_up(fakes, *flags)

    assert code == 0, err
    (apply,) = [c for c in fakes.calls("kubectl") if "-k" in c["argv"]]
    overlay = yaml.safe_load(apply["kustomization"])
    assert overlay["resources"][0].endswith(f"manifests/{variant}")
    assert overlay["namespace"] == NAMESPACE
    assert overlay["components"][0].endswith("manifests/shared-cluster")


def test_allow_context_confirms_a_context_once_and_the_setting_may_come_from_the_environment_fake(
        fakes, monkeypatch):
    code, _, err = fakes.inv("cluster.status", *TARGET, "--allow-context")
    assert code == 3, err  # allowed; nothing deployed there yet

    monkeypatch.setenv("INVOKE_CLUSTER_ALLOWED_CONTEXTS", f"staging,{CONTEXT}")
    code, out, err = fakes.inv("cluster.status", *TARGET)
    assert code == 3, err
    assert f"Nothing of the stack in namespace {NAMESPACE}" in out


def test_settings_name_the_target_like_the_flags_fake(fakes):
    configure = {"cluster": {"allowed_contexts": [CONTEXT], "context": CONTEXT, "namespace": NAMESPACE,
                             "registry": REGISTRY}}
    code, _, err = fakes.inv("up", *fakes.ports(), configure=configure)

    assert code == 0, err
    assert {tuple(c["argv"][1:5]) for c in fakes.calls("kubectl")} == {("--context", CONTEXT, "--namespace", NAMESPACE)}
    assert fakes.sdk.pushes[0]["repository"].startswith(REGISTRY + "/")


def test_a_context_missing_from_the_kubeconfig_is_named_in_one_sentence_fake(fakes):
    code, out, err = fakes.inv("deploy", "--context", "typo-context", "--allow-context", "--namespace", NAMESPACE,
                               "--registry", REGISTRY, configure=ALLOWED)
    assert code == 1 and "No image pushed" in err  # the image is checked first: nothing called yet

    fakes.inv("build", "--registry", REGISTRY)
    code, out, err = fakes.inv("deploy", "--context", "typo-context", "--allow-context", "--registry", REGISTRY)
    assert code == 1 and "Traceback" not in out + err
    assert "no context 'typo-context'" in err and "kubectl config get-contexts" in err
    assert not fakes.argvs("kubectl", "apply")


@pytest.mark.parametrize("flag, value, said", [
    ("--namespace", "Tracing_Demo", "--namespace must be a Kubernetes namespace name"),
    ("--registry", "https://registry.example.test", "--registry takes a host[:port][/path] without a scheme"),
    ("--registry", "registry example", "--registry must be a registry host"),
])
def test_bad_target_values_are_refused_in_one_sentence_before_any_call_fake(fakes, flag, value, said):
    given = {"--registry": REGISTRY, flag: value}
    code, out, err = fakes.inv("up", "--context", CONTEXT, *[a for pair in given.items() for a in pair],
                               configure=ALLOWED)

    assert code == 1 and "Traceback" not in out + err
    (line,) = err.strip().splitlines()
    assert line.startswith(said)
    assert not fakes.calls()


def test_kind_with_a_namespace_puts_the_stack_there_fake(fakes):
    code, _, err = fakes.inv("up", "--namespace", NAMESPACE, *fakes.ports())

    assert code == 0, err
    # Past creating the cluster (waiting for its node, putting the user's context back), every call
    # names the namespace.
    calls = fakes.calls("kubectl")
    scoped = [c["argv"] for c in calls[calls.index(next(c for c in calls if "get" in c["argv"])):]]
    assert scoped and all(argv[1:5] == ["--context", "kind-envoy-tracing", "--namespace", NAMESPACE]
                          for argv in scoped), scoped
    assert ("deployment", "front-envoy", NAMESPACE) in fakes.objects(NAMESPACE)
