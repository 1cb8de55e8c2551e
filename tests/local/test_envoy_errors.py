"""An Envoy config Envoy refuses, as `FILE:LINE: message` on one line (the file under manifests/),
for `inv dev`, `inv local.up` and `inv deploy` alike. Envoy said it in one 4,778-character line
ending with the whole rendered config as JSON, with no file or line."""
from __future__ import annotations

import pytest
from invoke.exceptions import Exit
from rich.console import Console

from meshtools.cluster import stack
from meshtools.local import envoy_config, launch
from meshtools.local.mesh import LocalMesh
from meshtools.shared import envoy_errors
from meshtools.shared.net import free_layout
from meshtools.shared.topology import FRONT

FRONT_SOURCE = envoy_config.source_path(FRONT)
MAX_LINE = 300


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def broken_copy(tmp_path, old: str, new: str):
    text = FRONT_SOURCE.read_text()
    assert old in text
    path = tmp_path / "front-envoy.yaml"
    path.write_text(text.replace(old, new, 1))
    return path, line_of(path.read_text(), new.splitlines()[-1])


@pytest.mark.parametrize("old, new, says", [
    ("timeout: 15s", "timeout: '15'", "route.timeout: message google.protobuf.Duration: duration must end with a single 's'"),
    ("timeout: 15s", "timeout: 15", "route.timeout: message google.protobuf.Duration: unexpected character"),
    ("connect_timeout: 1s", "connect_timeout: 1s\n    bogus_field: 1", "no such field: 'bogus_field'"),
], ids=["duration-without-unit", "duration-as-number", "unknown-field"])
def test_a_refusal_names_the_file_and_line_in_one_short_line(tmp_path, old, new, says):
    path, line = broken_copy(tmp_path, old, new)
    said = envoy_errors.refusal(path)
    assert said is not None and "\n" not in said and len(said) < MAX_LINE and "{" not in said, said
    assert said.startswith(f"{path}:{line}: ") and says in said, said


def test_inv_local_up_names_the_line_under_manifests_and_leaves_nothing_running(tmp_path, monkeypatch):
    real = envoy_config.load

    def broken(service):  # what a user's edit of front-envoy.yaml does to the rendered config
        config = real(service)
        if service == FRONT:
            config["static_resources"]["clusters"][0]["connect_timeout"] = "soon"
        return config

    monkeypatch.setattr(envoy_config, "load", broken)
    mesh = LocalMesh(layout=free_layout(replicas=1), state_dir=tmp_path)
    with pytest.raises(Exit) as refused:
        launch.start(mesh, Console(file=open("/dev/null", "w")), timeout=30)
    message = refused.value.message
    line = line_of(FRONT_SOURCE.read_text(), "connect_timeout:")
    assert message.startswith(f"Envoy refused its config: manifests/base/envoy/front-envoy.yaml:{line}: "), message
    assert "connect_timeout" in message and len(message) < MAX_LINE and "{" not in message
    assert not mesh.is_running() and refused.value.code == 1


def test_inv_local_up_names_a_config_that_is_not_even_yaml_before_starting_anything(tmp_path, monkeypatch):
    path, line = broken_copy(tmp_path, "connect_timeout: 1s", "connect_timeout: [1s")
    real = envoy_config.source_path
    monkeypatch.setattr(envoy_config, "source_path", lambda service: path if service == FRONT else real(service))
    mesh = LocalMesh(layout=free_layout(replicas=1), state_dir=tmp_path / "mesh")
    with pytest.raises(Exit) as refused:
        launch.start(mesh, Console(file=open("/dev/null", "w")), timeout=30)
    assert refused.value.message.startswith(f"Envoy refused its config: {path}:"), refused.value.message
    assert refused.value.code == 1 and not mesh.is_running() and not mesh.conf_path.exists()


def test_inv_deploy_checks_the_variant_s_configs_before_applying_anything(tmp_path, monkeypatch):
    (tmp_path / "envoy").mkdir()
    path, line = broken_copy(tmp_path / "envoy", "timeout: 15s", "timeout: '15'")
    monkeypatch.setitem(stack.VARIANTS, "default", tmp_path)
    with pytest.raises(Exit) as refused:
        stack.check_envoy_configs("default")
    assert refused.value.message.startswith(f"Envoy refused its config: {path}:{line}: "), refused.value.message
    stack.check_envoy_configs("upstream-proxy")  # the committed configs pass
