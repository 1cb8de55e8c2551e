"""Benchmark the service image: size and build times, this tree against a git revision, one run.

    python bench/image.py --base-image IMAGE [--baseline REV] [--network host] [--repeat N]

For each tree (the working tree's image inputs, and REV's when given) it builds
service.Dockerfile on the Docker engine DOCKER_HOST names: cold (no cache), cached after a
one-line source change, and again unchanged; and it reports the image's size and what the
layers above the base weigh. Times are medians over --repeat runs. A baseline whose Dockerfile
has no BASE_IMAGE argument gets its FROM line pointed at --base-image, so both trees build on
the same base. Builds run in temporary copies and every image made here is removed afterwards.
"""
from __future__ import annotations

import argparse
import io
import json
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from meshtools.cluster.image import BASE_IMAGE_ARG, DOCKERFILE, IMAGE_INPUTS  # noqa: E402

PREFIX = "envoy-tracing-bench/image"


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if check and result.returncode != 0:
        raise SystemExit(f"docker {' '.join(args[:2])} failed: {result.stderr.strip()[-400:]}")
    return result


def working_tree(dest: Path) -> None:
    for name in (*IMAGE_INPUTS, ".dockerignore"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif source.exists():
            shutil.copy(source, dest / name)


def revision_tree(rev: str, dest: Path) -> None:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")


def point_at_base(tree: Path, base: str) -> list[str]:
    """Build arguments that put `base` under the tree's Dockerfile (rewriting an old fixed FROM)."""
    dockerfile = tree / DOCKERFILE
    text = dockerfile.read_text()
    if re.search(rf"^ARG {BASE_IMAGE_ARG}=", text, re.M):
        return ["--build-arg", f"{BASE_IMAGE_ARG}={base}"]
    dockerfile.write_text(re.sub(r"^FROM \S+", f"FROM {base}", text, count=1, flags=re.M))
    return []


def build(tree: Path, tag: str, args: list[str], *extra: str) -> float:
    started = time.monotonic()
    docker("build", "--quiet", "--file", str(tree / DOCKERFILE), "--tag", tag, *args, *extra, str(tree))
    return time.monotonic() - started


def touch_source(tree: Path) -> None:
    with (tree / "service" / "__init__.py").open("a") as out:
        out.write(f"\n# bench {uuid.uuid4().hex}\n")


def measure(name: str, tree: Path, base: str, network: str | None, repeat: int, made: list[str]) -> dict:
    args = point_at_base(tree, base) + (["--network", network] if network else [])
    tag = f"{PREFIX}:{name}-{uuid.uuid4().hex[:8]}"
    made.append(tag)
    cold, cached, unchanged = [], [], []
    for _ in range(repeat):
        cold.append(build(tree, tag, args, "--no-cache"))
        touch_source(tree)
        cached.append(build(tree, tag, args))
        unchanged.append(build(tree, tag, args))
    inspect = json.loads(docker("image", "inspect", tag).stdout)[0]
    base_size = json.loads(docker("image", "inspect", base).stdout)[0]["Size"]
    return {"cold": statistics.median(cold), "cached": statistics.median(cached),
            "unchanged": statistics.median(unchanged), "size": inspect["Size"], "added": inspect["Size"] - base_size}


def mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-image", required=True, help="the base both trees build from")
    parser.add_argument("--baseline", help="a git revision to compare with (e.g. main~3)")
    parser.add_argument("--network", help="docker build --network (e.g. host)")
    parser.add_argument("--repeat", type=int, default=1, help="builds of each kind per tree; the median is shown")
    options = parser.parse_args(argv)
    if docker("image", "inspect", options.base_image, check=False).returncode != 0:
        raise SystemExit(f"Docker has no image {options.base_image}: pull or build it first.")

    made: list[str] = []
    results = {}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-image-") as tmp:
            trees = [("current", working_tree)]
            if options.baseline:
                trees.insert(0, ("baseline", lambda dest: revision_tree(options.baseline, dest)))
            for name, fill in trees:
                tree = Path(tmp) / name
                tree.mkdir()
                fill(tree)
                results[name] = measure(name, tree, options.base_image, options.network, options.repeat, made)
    finally:
        for tag in made:
            docker("image", "rm", "--force", tag, check=False)
        docker("image", "prune", "--force", "--filter", "dangling=true", check=False)

    server = docker("version", "--format", "{{.Server.Version}} (API {{.Server.APIVersion}})").stdout.strip()
    print(f"Docker {server}; base {options.base_image}; median of {options.repeat}")
    current = results["current"]
    rows = [("image size", "size", mb), ("layers above the base", "added", mb),
            ("cold build (no cache)", "cold", lambda s: f"{s:.1f} s"),
            ("cached build, one source line changed", "cached", lambda s: f"{s:.1f} s"),
            ("unchanged rebuild", "unchanged", lambda s: f"{s:.2f} s")]
    for label, key, show in rows:
        line = f"{label:40} {show(current[key]):>10}"
        if "baseline" in results:
            before = results["baseline"][key]
            line += f"   baseline {show(before):>10}   ({current[key] / before:.2f}×)"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
