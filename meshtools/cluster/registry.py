"""The service image in a registry: tag it REGISTRY/envoy-tracing/service:TAG and push it.

The docker SDK talks to the daemon (DOCKER_HOST, as the docker CLI) and takes the registry's
credentials from the user's Docker config (~/.docker/config.json and its credential helpers),
as `docker push` does: they never pass through argv, the terminal or a log. The refs pushed
are remembered per registry, so `inv deploy --registry R` applies exactly the one pushed there.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from invoke.exceptions import Exit

from meshtools.cluster.image import IMAGE_NAME
from meshtools.cluster.state import state_dir

PUSHED_FILE = "image-pushed.json"


@dataclass(frozen=True)
class Pushed:
    ref: str  # REGISTRY/envoy-tracing/service:TAG
    digest: str  # the manifest digest the registry answered, sha256:…
    new_layers: int  # layers uploaded by this push
    existing_layers: int  # layers the registry already had


def repository(registry: str) -> str:
    return f"{registry}/{IMAGE_NAME}"


def docker_client():
    """A docker SDK client configured like the docker CLI (DOCKER_HOST, DOCKER_TLS_VERIFY …)."""
    import docker  # imported here: only pushing needs it

    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException:
        raise Exit("Docker's daemon is not answering, so the image cannot be pushed: start Docker Desktop, "
                   "or `sudo systemctl start docker` on Linux, then try again.")
    return client


def push(local_ref: str, registry: str, client=None, say=print) -> Pushed:
    """Tag `local_ref` for `registry` and push it; layers the registry holds are not sent again."""
    import docker

    client = client or docker_client()
    tag = local_ref.rsplit(":", 1)[1]
    target = f"{repository(registry)}:{tag}"
    try:
        client.images.get(local_ref).tag(repository(registry), tag=tag)
        stream = client.api.push(repository(registry), tag=tag, stream=True, decode=True)
        new, existing, digest = set(), set(), ""
        for event in stream:
            if event.get("error"):
                raise Exit(f"Pushing {target} failed: {_one_line(event['error'])} "
                           "(`docker login` for a registry that needs credentials).")
            status, layer = event.get("status", ""), event.get("id")
            if status == "Pushed":
                new.add(layer)
            elif status == "Layer already exists" or status.startswith("Mounted from"):
                existing.add(layer)
            digest = (event.get("aux") or {}).get("Digest", digest)
    except docker.errors.ImageNotFound:
        raise Exit(f"There is no image {local_ref} to push: run `inv build` first.")
    except docker.errors.APIError as exc:
        raise Exit(f"Pushing {target} failed: {_one_line(exc.explanation or str(exc))}.")
    except docker.errors.DockerException as exc:
        raise Exit(f"Pushing {target} failed: {_one_line(str(exc))}.")
    if not digest:
        raise Exit(f"Pushing {target} ended without the registry confirming a digest; try again.")
    pushed = Pushed(target, digest, len(new), len(existing))
    say(f"Pushed {target} ({pushed.new_layers} new layers, {pushed.existing_layers} already there; {digest}).")
    return pushed


def _one_line(text: str) -> str:
    return " ".join(str(text).split()).rstrip(".")


def record(registry: str, pushed: Pushed) -> None:
    records = _records()
    records[registry] = asdict(pushed)
    (state_dir() / PUSHED_FILE).write_text(json.dumps(records, indent=2) + "\n")


def last_pushed(registry: str) -> str | None:
    """The ref `inv build --registry REGISTRY` pushed last, or None."""
    entry = _records().get(registry) or {}
    return entry.get("ref")


def _records() -> dict:
    try:
        data = json.loads((state_dir() / PUSHED_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
