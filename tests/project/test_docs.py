"""The documentation: README fits a screen, the site under docs/ builds with no broken link,
and every `inv` command and flag it shows exists (`inv --list`, `inv --help TASK`)."""
from __future__ import annotations

import functools
import re
import subprocess
import sys

import pytest

from meshtools.shared.topology import DOCS_DIR, PROJECT_ROOT
from tests.support.inv_process import run_inv

README = PROJECT_ROOT / "README.md"
README_MAX_LINES = 150
QUICK_STARTS = ("python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[tools]' && inv demo",
                "pip install -e '.[test]' && pytest")
PAGES = sorted(DOCS_DIR.glob("*.md"))


def test_the_readme_fits_a_screen_and_keeps_both_quick_starts():
    text = README.read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    code_lines = [line.strip() for line in text.splitlines()]
    assert all(command in code_lines for command in QUICK_STARTS)


def test_the_site_builds_strictly(tmp_path):
    # --strict: a link to a page or an anchor that does not exist fails the build.
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
                            env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-3000:]
    built = {p.relative_to(tmp_path / "site").as_posix() for p in (tmp_path / "site").rglob("index.html")}
    assert {f"{page.stem}/index.html" for page in PAGES if page.stem != "index"} <= built
    assert "fonts.googleapis.com" not in (tmp_path / "site" / "index.html").read_text()  # works offline


# -- every command the docs show --------------------------------------------------------

FENCE = re.compile(r"```[^\n]*\n(.*?)```", re.S)
INDENTED = re.compile(r"^(?: {4}|\t)(.*)$", re.M)
INLINE = re.compile(r"`([^`\n]+)`")
COMMAND = re.compile(r"(?<![\w./-])inv\s+([^`|;&)#\n]*)")
PLACEHOLDER = re.compile(r"^[A-Z][A-Z_…-]*$")


def code_of(text: str) -> list[str]:
    """The code a page shows: fenced blocks, indented blocks and inline spans."""
    fenced = FENCE.findall(text)
    rest = FENCE.sub("", text)
    return fenced + INDENTED.findall(rest) + INLINE.findall(INDENTED.sub("", rest))


def shown_commands() -> list[tuple[str, str]]:
    """(page, the words after `inv`) for every inv command in README.md and docs/."""
    found = []
    for page in [README, *PAGES]:
        for code in code_of(page.read_text()):
            for match in COMMAND.finditer(code):
                found.append((page.relative_to(PROJECT_ROOT).as_posix(), match[1].strip()))
    return found


@functools.cache
def task_names() -> frozenset[str]:
    listed = run_inv("--list", timeout=60).stdout
    return frozenset(line.split()[0] for line in listed.splitlines()[2:] if line.startswith("  ") and line.strip())


@functools.cache
def flags_of(task: str) -> frozenset[str]:
    shown = run_inv("--help", task, timeout=60).stdout
    return frozenset(re.findall(r"(--[a-z][\w-]*)", shown.partition("Options:")[2])) | {"--help"}


def problems(page: str, words: str) -> list[str]:
    tokens = [t.rstrip(".,:") for t in words.split()]
    said, task = [], None
    if tokens and tokens[0] in ("--list", "--help"):
        named = tokens[1:2]
        if tokens[0] == "--help" and named and not PLACEHOLDER.match(named[0]) and named[0] not in task_names():
            said.append(f"{page}: `inv {words}`: no task {named[0]}")
        return said
    for token in tokens:
        if token in task_names():
            task = token
        elif token.startswith("--") and task is None:
            said.append(f"{page}: `inv {words}`: {token} before any task")
        elif token.startswith("--") and token.split("=")[0] not in flags_of(task):
            said.append(f"{page}: `inv {words}`: inv {task} has no {token.split('=')[0]}")
        elif task is None and not token.startswith("-"):
            said.append(f"{page}: `inv {words}`: no task {token}")
            break
    return said


def test_the_docs_show_commands():
    assert len(shown_commands()) > 100


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda p: p.name)
def test_every_inv_command_and_flag_the_docs_show_exists(page):
    name = page.relative_to(PROJECT_ROOT).as_posix()
    wrong = [p for shown_page, words in shown_commands() if shown_page == name for p in problems(shown_page, words)]
    assert not wrong, "\n".join(wrong)


def test_the_check_catches_a_task_or_flag_that_does_not_exist():
    assert problems("x.md", "traces --limit 5") == []
    assert problems("x.md", "local.down && inv local.up --tracer opentelemetry".split("&&")[0]) == []
    assert problems("x.md", "build deploy --tracer opentelemetry") == []
    assert problems("x.md", "tracez --limit 5") == ["x.md: `inv tracez --limit 5`: no task tracez"]
    assert problems("x.md", "traces --limt 5") == ["x.md: `inv traces --limt 5`: inv traces has no --limt"]
