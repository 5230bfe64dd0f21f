"""Access control through real SO_PEERCRED credentials on the Unix socket.

As root (CI), requests come from forked children that drop to other uids; as another
user, the policy maps this process's own uid to the role under test (the daemon's uid is
then set to someone else so it is not admin by default).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from crdt.documents import MESH_DOCUMENT, MeshDocument
from crdt.schema import Organization, Workspace
from node.api.access import AccessPolicy, Peer, Role
from node.api.server import serve
from tests.api.peer import request_as
from tests.api.support import Served, make_served

ROOT = os.geteuid() == 0
GROUP = 40000  # the socket's group (as root)
UIDS = {Role.viewer: 40001, Role.operator: 40002, Role.admin: 40003}
NOBODY = 40009


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory other uids can traverse (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="nxmesh-access-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def identity(role: Role | None) -> tuple[int, int]:
    if not ROOT:
        return os.getuid(), os.getgid()
    return (UIDS[role] if role else NOBODY), GROUP


def policy(role: Role | None, groups: dict[int, Role] | None = None) -> AccessPolicy:
    if ROOT:
        return AccessPolicy(users={uid: r for r, uid in UIDS.items()}, groups=groups or {})
    users = {os.getuid(): role} if role else {}
    return AccessPolicy(users=users, groups=groups or {}, daemon_uid=-1)


async def served(nursery: trio.Nursery, directory: Path, pol: AccessPolicy) -> Served:
    api, app = make_served(directory, policy=pol)
    group = GROUP if ROOT else None
    await nursery.start(partial(serve, app, api.socket, group=group))
    return api


def seed_directly(api: Served) -> str:
    """An organization and a workspace written straight into the mesh document."""
    mesh = api.services.document(MESH_DOCUMENT)
    assert mesh is not None
    org, _ = MeshDocument.edit(mesh, lambda d: d.create(Organization, {"name": "acme"}))
    data = {"name": "w", "organization": org.id}
    ws, _ = MeshDocument.edit(mesh, lambda d: d.create(Workspace, data))
    return ws.id


UP = {"name": "app", "servers": [{"address": "127.0.0.1:9001"}]}

# (method, path, body, lowest role allowed); {ws} is the workspace id
ACTIONS: list[tuple[str, str, dict[str, Any] | None, Role]] = [
    ("GET", "/v1/status", None, Role.viewer),
    ("GET", "/v1/nodes/node1/status", None, Role.viewer),
    ("GET", "/v1/nodes/node1/config", None, Role.viewer),
    ("GET", "/v1/workspaces", None, Role.viewer),
    ("GET", "/v1/workspaces/{ws}/upstreams", None, Role.viewer),
    ("POST", "/v1/workspaces/{ws}/upstreams", UP, Role.operator),
    ("POST", "/v1/organizations", {"name": "other"}, Role.admin),
    ("POST", "/v1/invites", {}, Role.admin),
    ("PUT", "/v1/nodes/node1/labels", {"labels": {}}, Role.admin),
    ("PUT", "/v1/nodes/node2/workspaces", {"workspaces": ["w"]}, Role.admin),
]


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.name)
async def test_each_role_may_do_what_it_allows_and_nothing_more(
    role: Role, shared_dir: Path, nursery: trio.Nursery
) -> None:
    api = await served(nursery, shared_dir, policy(role))
    sock = api.socket
    ws = seed_directly(api)
    uid, gid = identity(role)
    for method, path, body, lowest in ACTIONS:
        before = api.snapshot()
        answer = await request_as(sock, uid, gid, method, path.format(ws=ws), body)
        if role >= lowest:
            assert answer.status < 400, (role, method, path, answer.body)
        else:
            assert answer.status == 403, (role, method, path, answer.body)
            assert api.snapshot() == before  # refused: nothing written
            assert api.membership.invites == []
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.body["required_role"] == lowest.name
            assert answer.body["role"] == role.name
    status = await request_as(sock, uid, gid, "GET", "/v1/status")
    assert status.body["api"]["caller"] == {"uid": uid, "role": role.name}


async def test_a_uid_without_a_role_gets_403_everywhere(
    shared_dir: Path, nursery: trio.Nursery
) -> None:
    sock = (await served(nursery, shared_dir, policy(None))).socket
    uid, gid = identity(None)
    for method, path in (
        ("GET", "/v1/status"),
        ("GET", "/v1/openapi.json"),
        ("POST", "/v1/invites"),
    ):
        answer = await request_as(sock, uid, gid, method, path, {} if method == "POST" else None)
        assert answer.status == 403
        assert f"uid {uid} has no role" in answer.body["detail"]


async def test_a_group_can_carry_the_role(shared_dir: Path, nursery: trio.Nursery) -> None:
    gid = GROUP if ROOT else os.getgid()
    sock = (await served(nursery, shared_dir, policy(None, groups={gid: Role.viewer}))).socket
    uid, _ = identity(None)
    assert (await request_as(sock, uid, gid, "GET", "/v1/status")).status == 200
    assert (await request_as(sock, uid, gid, "POST", "/v1/invites", {})).status == 403


async def test_the_socket_is_0660_and_others_cannot_connect(
    shared_dir: Path, nursery: trio.Nursery
) -> None:
    sock = (await served(nursery, shared_dir, policy(None))).socket
    mode = sock.stat().st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o660
    if ROOT:
        assert sock.stat().st_gid == GROUP
        with pytest.raises(PermissionError) as info:  # neither the owner nor in the group
            await request_as(sock, NOBODY, GROUP + 1, "GET", "/v1/status")
        assert info.value.errno == errno.EACCES


def test_policy_rules() -> None:
    p = AccessPolicy(users={1000: Role.viewer}, groups={50: Role.operator}, daemon_uid=999)
    assert p.role_for(Peer(1, 0, 0)) is Role.admin  # root
    assert p.role_for(Peer(1, 999, 0)) is Role.admin  # the daemon's own user
    assert p.role_for(Peer(1, 1000, 50)) is Role.viewer  # the user entry wins
    assert p.role_for(Peer(1, 1001, 50)) is Role.operator  # then the primary group
    assert p.role_for(Peer(1, 1001, 51)) is None
    assert p.role_for(None) is None


def test_policy_from_config() -> None:
    p = AccessPolicy.from_config(
        {"root": "viewer", "uid:1000": "operator", "gid:50": "viewer", "group:root": "admin"},
        daemon_uid=7,
    )
    assert p.users == {0: Role.viewer, 1000: Role.operator}
    assert p.groups == {50: Role.viewer, 0: Role.admin}
    assert p.daemon_uid == 7
    with pytest.raises(ValueError, match="not a role"):
        AccessPolicy.from_config({"uid:1": "god"})
    with pytest.raises(ValueError, match="no user named"):
        AccessPolicy.from_config({"no-such-user-xyz": "viewer"})
