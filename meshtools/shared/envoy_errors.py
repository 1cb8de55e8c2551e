"""Envoy's refusal of a config as one line a person can act on: `FILE:LINE: message`.

`envoy --mode validate` ends with one line of several thousand characters: a log prefix,
the error with the field's path in the config (`static_resources.listeners[0]…route.timeout`)
and the whole config as JSON. The file a person edits is the YAML under manifests/, so the
path is looked up there for its line, and the JSON and positions in it are dropped.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from meshtools.shared.topology import PROJECT_ROOT

LOG_PREFIX = re.compile(r"^(?:\[[^\]]*\]\s*)+")
INITIALIZING = re.compile(r"^error initializing configuration '[^']*':\s*")
# Envoy's wrapping around the reason, which names the bootstrap proto and the JSON it converted.
WRAPPERS = re.compile(r"Unable to parse JSON as proto \(INVALID_ARGUMENT: invalid JSON in [\w.]+ @\s*"
                      r"|Protobuf message \(type [\w.]+ reason INVALID_ARGUMENT:\s*(?:invalid JSON in [\w.]+ @\s*)?")
TRAILER = re.compile(r"\)? has unknown fields$")
QUOTED = re.compile(r"'([^'\s]{2,})'")  # a value or field name Envoy quotes: 'bogus_field', 'NOPE'
JSON_POSITION = re.compile(r",?\s*near \d+:\d+ \(offset \d+\)")
SEGMENT = r"(?:[A-Za-z_]\w*(?:\[\d+\])*|<any>)"
FIELD_PATH = re.compile(rf"{SEGMENT}(?:\.{SEGMENT})+")
UNKNOWN_FIELD = re.compile(r"\((" + FIELD_PATH.pattern + r")\) (\w+): Cannot find field")
INDEXED = re.compile(r"^(\w+)((?:\[\d+\])*)$")
VALIDATE_TIMEOUT = 10.0  # seconds; validation takes 0.3 s, a check must never hold up a start for long
MAX_MESSAGE = 240  # characters: one line, even when Envoy says more


def _without_dump(text: str) -> str:
    """The message without the config Envoy appends to it as JSON (`…: {"admin": …}`)."""
    at = text.find(": {")
    return text[:at] if at > 0 and text.rstrip().endswith("}") else text


def _walk(root, path: str):
    """(segments found, the deepest YAML node's line) for a field path in a composed YAML tree."""
    node, found, line = root, 0, None
    for segment in path.split("."):
        if segment == "<any>":  # typed_config holds the Any's fields itself
            found += 1
            continue
        match = INDEXED.match(segment)
        if not match or not isinstance(node, yaml.MappingNode):
            break
        pair = next(((k, v) for k, v in node.value if getattr(k, "value", None) == match[1]), None)
        if pair is None:
            break
        key, node = pair
        line = key.start_mark.line + 1
        for index in re.findall(r"\[(\d+)\]", match[2]):
            if not isinstance(node, yaml.SequenceNode) or int(index) >= len(node.value):
                return found, line
            node = node.value[int(index)]
            line = node.start_mark.line + 1
        found += 1
    return found, line


def locate(source: Path, text: str) -> tuple[int | None, str | None]:
    """The line in `source` of the field Envoy's message names, and that field's path."""
    try:
        written = source.read_text()
        root = yaml.compose(written)
    except (OSError, yaml.YAMLError):
        return None, None
    lines = written.splitlines()
    for quoted in QUOTED.findall(text):  # a name that only one line has is the most precise place
        holding = [n for n, line in enumerate(lines, 1) if re.search(rf"(?<![\w.-]){re.escape(quoted)}(?![\w.-])", line)]
        if len(holding) == 1:
            return holding[0], None
    candidates = [f"{m[1]}.{m[2]}" for m in UNKNOWN_FIELD.finditer(text)] + FIELD_PATH.findall(text)
    best = (0, None, None)
    for path in candidates:
        found, line = _walk(root, path)
        if line is not None and found > best[0]:
            best = (found, line, path)
    return best[1], best[2]


def explain(said: str, source: Path) -> str:
    """`manifests/base/envoy/front-envoy.yaml:81: … route.timeout: …`, one line."""
    lines = [line for line in said.strip().splitlines() if line.strip()]
    text = lines[-1] if lines else "Envoy refused it without a reason"
    text = INITIALIZING.sub("", LOG_PREFIX.sub("", text))
    text = JSON_POSITION.sub("", WRAPPERS.sub("", " ".join(_without_dump(text).split())))
    text = TRAILER.sub("", text)
    if text.count(")") > text.count("("):
        text = text[::-1].replace(")", "", text.count(")") - text.count("("))[::-1]
    line, path = locate(source, text)
    if path:
        fields = [s for s in path.split(".") if s != "<any>"]
        text = text.replace(path, ".".join(fields[-3:]))  # its last fields: the line says where
    if len(text) > MAX_MESSAGE:
        text = text[:MAX_MESSAGE - 1] + "…"
    return f"{shown(source)}:{line}: {text}" if line else f"{shown(source)}: {text}"


def shown(path: Path) -> str:
    """A path as a person types it from the project's root: manifests/base/envoy/front-envoy.yaml."""
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def refusal(config: Path, source: Path | None = None, envoy: str | None = None) -> str | None:
    """None when `envoy --mode validate` accepts `config`, else its reason as `explain` words it
    (lines looked up in `source`, the file under manifests/ that `config` was rendered from)."""
    envoy = envoy or shutil.which("envoy")
    if envoy is None:
        raise FileNotFoundError("envoy is not on PATH")
    try:
        result = subprocess.run([envoy, "--mode", "validate", "--disable-hot-restart", "-c", str(config)],
                                capture_output=True, text=True, timeout=VALIDATE_TIMEOUT)
    except subprocess.TimeoutExpired:
        return None  # an envoy that does not answer cannot judge; starting it will tell
    if result.returncode == 0:
        return None
    return explain(result.stderr + result.stdout, source or config)


def first_refusal(configs: list[tuple[Path, Path]], envoy: str | None = None) -> str | None:
    """The first refusal among (config, source) pairs, validated side by side (0.3 s each)."""
    with ThreadPoolExecutor(max_workers=len(configs) or 1) as pool:
        said = list(pool.map(lambda pair: refusal(pair[0], pair[1], envoy), configs))
    return next((s for s in said if s), None)
