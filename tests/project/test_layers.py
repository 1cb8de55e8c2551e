"""The folders are the architecture: layers import downwards only, and nothing imports in a circle.

An AST walk over every module of the packages (imports inside functions count too) builds
the import graph; the rules below are the layering README's "Where things are" describes.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from meshtools.shared.topology import PROJECT_ROOT

PACKAGES = ("meshtools", "trace_proxy", "service")

# Higher numbers sit higher: a module may import its own layer's shared parts or lower layers.
LAYERS = {
    "meshtools.tasks": 3,
    "meshtools.local": 2, "meshtools.cluster": 2, "meshtools.views": 2,
    "meshtools.shared": 1,
    "trace_proxy.app": 3, "trace_proxy.collector": 3, "trace_proxy.server": 3, "trace_proxy.cli": 3, "trace_proxy.__main__": 3,
    "trace_proxy.ingest": 2, "trace_proxy.store": 2, "trace_proxy.sinks": 2, "trace_proxy.web": 2,
    "trace_proxy.settings": 1, "trace_proxy.metrics": 1,
}
# Parts of one layer that stand side by side and must not lean on each other.
SIBLINGS = [{"meshtools.local", "meshtools.cluster", "meshtools.views"}]
# Task modules may share meshtools.tasks.options (the shared flags), never each other's helpers.
TASK_HELPERS = {"meshtools.tasks.options", "meshtools.tasks.cli"}
# Packages that must never import another (the image runs service/ and trace_proxy/ without the tooling).
FORBIDDEN = {
    "service": ("meshtools", "trace_proxy", "tests"),
    "trace_proxy": ("meshtools", "service", "tests"),
    "meshtools": ("tests", "service"),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            name = module_name(path)
            targets = graph.setdefault(name, set())
            is_package = path.name == "__init__.py"
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    targets.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom):
                    base = node.module or ""
                    if node.level:  # relative import
                        anchor = name.split(".") if is_package else name.split(".")[:-1]
                        anchor = anchor[: len(anchor) - (node.level - 1)]
                        base = ".".join(anchor + ([base] if base else []))
                    targets.add(base)
                    # `from pkg import mod` imports the module pkg.mod when there is one.
                    targets.update(f"{base}.{alias.name}" for alias in node.names)
    project = set(graph)
    return {name: {t for t in targets if t in project and t != name} for name, targets in graph.items()}


def part(module: str) -> str | None:
    """The layer entry a module belongs to (its longest matching prefix)."""
    matches = [p for p in LAYERS if module == p or module.startswith(p + ".")]
    return max(matches, key=len) if matches else None


GRAPH = import_graph()
EDGES = sorted((a, b) for a, targets in GRAPH.items() for b in targets)


def test_the_graph_covers_every_package():
    assert {"meshtools.tasks.local", "meshtools.cluster.stack", "trace_proxy.app", "service"} <= set(GRAPH)
    assert ("meshtools.tasks.stack", "meshtools.cluster.stack") in EDGES


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_packages_stay_apart(package):
    crossing = [(a, b) for a, b in EDGES
                if a.split(".")[0] == package and b.split(".")[0] in FORBIDDEN[package]]
    assert not crossing, f"{package} must not import {FORBIDDEN[package]}: {crossing}"


def test_no_module_imports_a_higher_layer():
    upwards = [(a, b) for a, b in EDGES
               if part(a) and part(b) and a.split(".")[0] == b.split(".")[0] and LAYERS[part(b)] > LAYERS[part(a)]]
    assert not upwards, f"imports against the layering: {upwards}"


def test_sibling_parts_do_not_lean_on_each_other():
    leaning = [(a, b) for a, b in EDGES
               for group in SIBLINGS
               if part(a) in group and part(b) in group and part(a) != part(b)]
    assert not leaning, f"side-by-side parts importing each other: {leaning}"


def test_task_modules_import_no_other_task_module():
    tasks = {m for m in GRAPH if m.startswith("meshtools.tasks.") and m not in TASK_HELPERS}
    crossing = [(a, b) for a, b in EDGES if a in tasks and b in tasks]
    assert not crossing, f"task modules importing each other: {crossing}"


def test_there_is_no_import_cycle():
    # Package __init__ modules are imported by their children implicitly; leave out those edges.
    def children_of(node):
        return {t for t in GRAPH[node] if not node.startswith(t + ".")}

    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(children_of(node)):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(GRAPH):
        if node not in state:
            visit(node, [])
    assert not cycles, f"import cycles: {cycles}"


def test_tasks_py_only_assembles_task_collections():
    tree = ast.parse((PROJECT_ROOT / "tasks.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= {"invoke", "meshtools.tasks"}, imported
