"""node.config and node.statedir: layered configuration with one-line errors; a state
directory whose identity is private and whose boot epoch only grows."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

from crdt.documents import MESH_DOCUMENT, MeshDocument
from crdt.membership import MeshState
from crdt.schema import Workspace
from crdt.store import PersistedDoc, Store
from node.bootstrap import BootstrapError, init_node, join_node
from node.config import ConfigError, NodeConfig
from node.statedir import StateDir, StateDirError


def _config(**over: object) -> NodeConfig:
    values: dict[str, object] = {"name": "web-1", "listen": "127.0.0.1:7946", **over}
    return NodeConfig.from_values(values)


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    _config(http="127.0.0.2:8080", roles={"1000": "viewer"}).write(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    loaded = NodeConfig.load(path, environ={})
    assert loaded.http == "127.0.0.2:8080"
    assert loaded.roles == {"1000": "viewer"}
    env = {"NXMESH_LISTEN": "127.0.0.1:9000", "NXMESH_SEEDS": "127.0.0.1:1,127.0.0.1:2"}
    layered = NodeConfig.load(path, environ=env, overrides={"listen": "127.0.0.1:9100"})
    assert layered.listen == "127.0.0.1:9100"
    assert layered.seeds == ("127.0.0.1:1", "127.0.0.1:2")


def test_the_splay_spreads_reloads_and_render_only_has_none() -> None:
    assert _config().splay == 0.25
    assert _config(nginx_mode="render-only").splay == 0.0
    assert _config(nginx_mode="render-only", apply_splay="1.5").splay == 1.5
    assert _config(apply_splay="0").splay == 0.0
    assert _config(apply_splay=0.5).splay == 0.5, "a number in config.toml"


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"name": "Web_1"}, "name: invalid node name"),
        ({"listen": "localhost:7946"}, "listen: 'localhost' is not an IP address"),
        ({"listen": "127.0.0.1:70000"}, "not between 1 and 65535"),
        ({"listen": "0.0.0.0:7946"}, "advertise: required"),
        ({"metrics": "10.0.0.1:9100"}, "metrics: 10.0.0.1 is not a loopback"),
        ({"nginx_mode": "docker"}, "nginx_mode: 'docker'"),
        ({"roles": {"pid:4": "admin"}}, "roles: 'pid:4' is not a user name"),
        ({"roles": {"1000": "root"}}, "roles: 'root'"),
        ({"colour": "blue"}, "unknown setting(s): colour"),
        ({"apply_splay": "soon"}, "apply_splay: 'soon' is not a number"),
        ({"apply_splay": "-1"}, "apply_splay: -1.0 is not between 0 and 60"),
    ],
)
def test_bad_values_are_named_with_the_reason(over: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _config(**over)


def test_init_makes_a_complete_private_state_directory(tmp_path: Path) -> None:
    state = StateDir.at(tmp_path / "n1")
    created = init_node(state, _config())
    assert state.root.stat().st_mode & 0o777 == 0o700
    assert state.identity_file.stat().st_mode & 0o777 == 0o600
    assert state.read_identity().public_key == created.identity.public_key
    assert state.read_genesis() == created.genesis
    with Store.open(state.store) as store:
        doc = PersistedDoc.open(store, MESH_DOCUMENT)
        mesh = MeshState(doc, created.genesis)
        assert mesh.members == {created.identity.public_key}
        assert mesh.serves_all(created.identity.public_key)
        workspaces, _ = MeshDocument(doc.doc).list(Workspace)
        assert [w.id for w in workspaces] == ["default"]
    with pytest.raises(StateDirError, match="already holds a node"):
        init_node(state, _config())
    with pytest.raises(BootstrapError, match="already holds a node"):
        trio.run(join_node, state, "nxm1.AAAA", _config())


def test_an_identity_readable_by_others_is_refused(tmp_path: Path) -> None:
    state = StateDir.at(tmp_path / "n1")
    init_node(state, _config())
    os.chmod(state.identity_file, 0o644)
    with pytest.raises(StateDirError, match="readable by others"):
        state.read_identity()


def test_boot_epochs_only_grow_even_if_the_clock_goes_back(tmp_path: Path) -> None:
    state = StateDir.at(tmp_path / "n1")
    state.root.mkdir()
    first = state.next_boot_epoch()
    state.boot_epoch_file.write_text(f"{first + 10**15}\n")  # a clock that was far ahead
    second = state.next_boot_epoch()
    assert second == first + 10**15 + 1
    assert state.next_boot_epoch() > second
