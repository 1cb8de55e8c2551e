"""Start a container the way the rendered manifests start it, on Docker instead of Kubernetes.

`run_options` turns a Deployment's pod spec and one of its containers into docker SDK
`containers.run` options: command and args, env, user and group, read-only root filesystem,
dropped capabilities, no new privileges and the volumes it mounts. Anything in the spec it
cannot reproduce raises, so a test never silently runs something the cluster would not.

Only listen and upstream addresses may change (`env`, `args` overrides): on the host network,
with every service on a free port of 127.0.0.1.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from meshtools.shared.topology import MANIFESTS_DIR

_SIZE = re.compile(r"^(\d+)(Ki|Mi|Gi)?$")


def rendered(directory: Path = MANIFESTS_DIR) -> list[dict]:
    """The objects `kubectl kustomize` renders, as `kubectl apply -k` would send them."""
    result = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {directory} failed: {result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def pod_spec(objects: list[dict], deployment: str) -> dict:
    (found,) = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == deployment]
    return found["spec"]["template"]["spec"]


def containers_of_image(objects: list[dict], image_name: str) -> list[tuple[str, dict, dict]]:
    """(deployment, pod spec, container) for every container that runs `image_name` (any tag)."""
    found = []
    for obj in objects:
        if obj["kind"] != "Deployment":
            continue
        spec = obj["spec"]["template"]["spec"]
        for container in spec["containers"]:
            if container["image"].rsplit(":", 1)[0] == image_name:
                found.append((obj["metadata"]["name"], spec, container))
    return found


def _tmpfs_options(volume: dict) -> str:
    """An emptyDir as a tmpfs of its size limit. A disk-backed one (the trace proxy's spool) is a
    writable scratch folder all the same; only its medium differs, which no test here looks at."""
    empty_dir = volume.get("emptyDir")
    if empty_dir is None or empty_dir.get("medium") not in (None, "", "Memory"):
        raise ValueError(f"volume {volume['name']}: only emptyDir volumes run on Docker here")
    limit = empty_dir.get("sizeLimit")
    if not limit:
        return ""
    match = _SIZE.match(str(limit))
    if not match:
        raise ValueError(f"volume {volume['name']}: sizeLimit {limit} is not a size this understands")
    unit = {"Ki": "k", "Mi": "m", "Gi": "g", None: ""}[match[2]]
    return f"size={match[1]}{unit}"


def _replace_args(args: list[str], replacements: dict[str, str]) -> list[str]:
    """`args` with the value after each flag in `replacements` swapped; every flag must be there."""
    args = list(args)
    for flag, value in replacements.items():
        if flag not in args[:-1]:
            raise ValueError(f"the manifest's args {args} have no {flag} to point elsewhere")
        args[args.index(flag) + 1] = value
    return args


def run_options(spec: dict, container: dict, *, env: dict[str, str] | None = None,
                args: dict[str, str] | None = None, secrets: dict[str, str] | None = None,
                extra_env: dict[str, str] | None = None, without_mounts: tuple[str, ...] = ()) -> dict:
    """docker SDK `containers.run` keyword arguments for `container` of pod `spec`.

    `env` overrides values the manifest sets, `args` the value after a flag, `secrets` gives the
    values of secretKeyRef variables (an optional one is left unset otherwise, as Kubernetes
    does without the Secret), `extra_env` adds settings the manifest leaves at their default
    (where Honeycomb is), `without_mounts` leaves out mounts by their path.
    """
    pod_context = spec.get("securityContext", {})
    context = container.get("securityContext", {})
    uid = context.get("runAsUser", pod_context.get("runAsUser"))
    gid = context.get("runAsGroup", pod_context.get("runAsGroup"))
    if uid is None or gid is None:
        raise ValueError(f"container {container['name']}: no runAsUser/runAsGroup to run as")

    environment = {}
    for variable in container.get("env", []):
        if "value" in variable:
            environment[variable["name"]] = variable["value"]
        elif "secretKeyRef" in variable.get("valueFrom", {}):
            ref = variable["valueFrom"]["secretKeyRef"]
            if variable["name"] in (secrets or {}):
                environment[variable["name"]] = secrets[variable["name"]]
            elif not ref.get("optional"):
                raise ValueError(f"{variable['name']} needs Secret {ref['name']}: pass it in `secrets`")
        else:
            raise ValueError(f"{variable['name']}: only values and Secret keys are reproduced here")
    for name, value in (env or {}).items():
        if name not in environment:
            raise ValueError(f"{name} is not set by the manifest; overrides may only re-point what it sets")
        environment[name] = value
    for name, value in (extra_env or {}).items():
        if name in environment:
            raise ValueError(f"{name} is set by the manifest; re-point it with `env`")
        environment[name] = value

    volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
    tmpfs = {}
    for mount in container.get("volumeMounts", []):
        if mount["mountPath"] in without_mounts:
            continue
        tmpfs[mount["mountPath"]] = _tmpfs_options(volumes[mount["name"]])
    unknown = set(without_mounts) - {mount["mountPath"] for mount in container.get("volumeMounts", [])}
    if unknown:
        raise ValueError(f"the manifest mounts nothing at {sorted(unknown)}")

    security_opt = []
    if context.get("allowPrivilegeEscalation") is False:
        security_opt.append("no-new-privileges")
    command = container.get("command") or []
    return {
        "entrypoint": command or None,
        "command": _replace_args(container.get("args", []), args or {}),
        "environment": environment,
        "user": f"{uid}:{gid}",
        "read_only": bool(context.get("readOnlyRootFilesystem")),
        "cap_drop": context.get("capabilities", {}).get("drop", []),
        "cap_add": context.get("capabilities", {}).get("add", []),
        "security_opt": security_opt,
        "tmpfs": tmpfs,
        "network_mode": "host",
    }
