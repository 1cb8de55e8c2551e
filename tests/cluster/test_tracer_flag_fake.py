"""`--tracer` on the cluster tasks (fake docker, kind and kubectl): the OpenTelemetry tracer
applies manifests/opentelemetry; bad combinations end in one sentence before anything runs."""
from __future__ import annotations

import copy

import pytest
from invoke import Collection

import tasks
from tests.support.fakes_harness import Fakes, fakes_for


class AllTasks(Fakes):
    def namespace(self, configure: dict | None = None) -> Collection:
        """The real task tree of tasks.py (`inv up` too), with `configure` over its settings."""
        ns = copy.deepcopy(tasks.ns)  # configured here only: the real tree stays as it is
        if configure:
            ns.configure(configure)
        return ns


@pytest.fixture
def fakes(tmp_path, monkeypatch, capsys):
    yield from fakes_for(AllTasks, tmp_path, monkeypatch, capsys)


def _applied(fakes) -> str:
    (apply,) = [c for c in fakes.calls("kubectl") if "-k" in c["argv"]]
    return apply["kustomization"]


def test_deploy_with_the_opentelemetry_tracer_applies_its_variant_fake(fakes):
    fakes.inv("cluster.up")
    fakes.inv("build")
    code, _, err = fakes.inv("deploy", "--tracer", "opentelemetry", "--no-forward")
    assert code == 0, err
    assert "opentelemetry" in _applied(fakes)


def test_the_tracer_can_come_from_invoke_config_fake(fakes):
    fakes.inv("cluster.up")
    fakes.inv("build")
    code, _, err = fakes.inv("deploy", "--no-forward", configure={"cluster": {"tracer": "opentelemetry"}})
    assert code == 0, err
    assert "opentelemetry" in _applied(fakes)


def test_the_default_tracer_is_zipkin_fake(fakes):
    fakes.inv("cluster.up")
    fakes.inv("build")
    code, _, err = fakes.inv("deploy", "--no-forward")
    assert code == 0, err
    assert "opentelemetry" not in _applied(fakes) and "upstream-proxy" not in _applied(fakes)


@pytest.mark.parametrize("task", ["deploy", "up"])
@pytest.mark.parametrize("args,said", [
    (["--tracer", "jaeger"], "--tracer must be zipkin or opentelemetry, got 'jaeger'."),
    (["--tracer", "opentelemetry", "--variant", "upstream-proxy"], "runs the Zipkin tracer only"),
])
def test_bad_tracer_choices_end_in_one_sentence_before_anything_runs_fake(fakes, task, args, said):
    code, _, err = fakes.inv(task, *args)
    assert code != 0 and said in err and "Traceback" not in err
    assert not fakes.calls("kind") and not fakes.calls("kubectl")
