"""The hosted-CI workflow cannot run here, so it is checked by construction: its schema, and
every command in it is a task of ours, a pytest run this repository accepts, or a command
the runner documents."""
from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from invoke.parser import ParseError, Parser

import tasks
from meshtools.cluster import kind
from meshtools.shared.topology import FRONT, PROJECT_ROOT, SERVICE1, SERVICE2, TRACE_PROXY, TRACE_PROXY_URL

WORKFLOW = PROJECT_ROOT / ".github" / "workflows" / "cluster-e2e.yml"
# Commands GitHub's ubuntu runner image documents as installed (kind comes from kind-action).
RUNNER_COMMANDS = {"pip", "curl", "kubectl", "mkdir"}
ACTIONS = {"actions/checkout", "actions/setup-python", "actions/upload-artifact", "helm/kind-action"}
SEPARATORS = {"&&", "||", ";", "|"}
REDIRECTS = {">", ">>", "<", "2>"}


def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def steps() -> list[dict]:
    return [step for job in workflow()["jobs"].values() for step in job["steps"]]


def commands() -> list[list[str]]:
    """Every simple command of every `run:` step, as its words (redirect targets dropped)."""
    found = []
    for step in steps():
        script = step.get("run", "").replace("\\\n", " ")
        for line in script.splitlines():
            lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|<>")
            lexer.whitespace_split = True
            words, skip = [], False
            for token in list(lexer) + [";"]:
                if token in SEPARATORS:
                    if words:
                        found.append(words)
                    words = []
                elif token in REDIRECTS:
                    skip = True
                elif skip:
                    skip = False
                else:
                    words.append(token)
    return found


def test_the_workflow_passes_the_github_workflow_schema_offline():
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_command_is_our_task_a_pytest_run_or_a_runner_command():
    for words in commands():
        assert words[0] in {"inv", "pytest"} | RUNNER_COMMANDS or (PROJECT_ROOT / words[0]).is_file(), words


def test_every_inv_command_names_tasks_and_flags_that_exist():
    parser = Parser(contexts=tasks.ns.to_contexts())
    invs = [words[1:] for words in commands() if words[0] == "inv"]
    assert invs
    for argv in invs:
        try:
            parser.parse_argv(argv)
        except ParseError as exc:
            pytest.fail(f"`inv {' '.join(argv)}` in {WORKFLOW.name}: {exc}")


def test_every_pytest_command_is_accepted_and_the_cluster_run_selects_the_cluster_tests():
    runs = [words[1:] for words in commands() if words[0] == "pytest"]
    assert ["-m", "not cluster"] in runs and ["-m", "cluster"] in runs, "the suite but the cluster tests, then those"
    for argv in runs:
        result = subprocess.run([sys.executable, "-m", "pytest", *argv, "--collect-only", "-q", "-p", "no:cacheprovider"],
                                cwd=PROJECT_ROOT, capture_output=True, text=True)
        assert result.returncode == 0, f"pytest {' '.join(argv)}: {result.stdout[-2000:]}{result.stderr[-2000:]}"
        if argv == ["-m", "cluster"]:
            assert "test_cluster_e2e.py" in result.stdout and "[cluster]" in result.stdout
        if argv == ["-m", "not cluster"]:
            assert "test_cluster_e2e.py" not in result.stdout and "[cluster]" not in result.stdout


def test_the_cluster_is_created_before_the_cluster_tests_and_diagnostics_run_only_on_failure():
    runs = [step.get("run", "") for step in steps()]
    assert runs.index("inv cluster.up") < runs.index("pytest -m cluster")
    after = steps()[runs.index("pytest -m cluster") + 1:]
    assert after and all(step.get("if") == "failure()" for step in after)
    (upload,) = [s for s in after if s.get("uses", "").startswith("actions/upload-artifact@")]
    scripts = "\n".join(step.get("run", "") for step in after)
    assert "--output diagnostics/traces.json" in scripts and "> diagnostics/pods.log" in scripts
    assert upload["with"]["path"].rstrip("/") == "diagnostics"


def test_diagnostics_read_our_cluster_and_trace_proxy():
    for words in commands():
        if words[0] == "kubectl":
            assert words[1:3] == ["--context", kind.context_name(kind.DEFAULT_CLUSTER_NAME)], words
        if words[0] == "curl":
            (url,) = [w for w in words if w.startswith("http")]
            assert urlsplit(url).port == urlsplit(TRACE_PROXY_URL).port and "/api/v2/traces" in url
    (logs,) = [w for w in commands() if w[0] == "kubectl" and "logs" in w]
    selector = logs[logs.index("--selector") + 1]
    assert all(app in selector for app in (FRONT, SERVICE1, SERVICE2, TRACE_PROXY))


def test_every_action_is_a_known_one_pinned_to_a_release():
    for step in steps():
        if "uses" in step:
            name, _, ref = step["uses"].partition("@")
            assert name in ACTIONS and ref.startswith("v"), step["uses"]
