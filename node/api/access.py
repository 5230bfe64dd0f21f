"""Who may do what: the caller's uid (SO_PEERCRED on the Unix socket) maps to a role.

Roles are ordered: ``viewer`` reads; ``operator`` also edits workspaces' content (virtual
hosts, upstreams, streams, certificates' metadata, access lists); ``admin`` does
everything (organizations, workspaces, node labels, invites, revocation). Root and the
daemon's own uid are always admin. Otherwise the caller's uid, then its primary gid, is
looked up in the node's configuration; a caller found in neither gets 403 on every request.
"""

from __future__ import annotations

import enum
import grp
import os
import pwd
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from node.api.problems import ApiProblem, problem_response

__all__ = ["PEER_EXTENSION", "ROLE_EXTENSION", "AccessMiddleware", "AccessPolicy", "Peer", "Role"]

PEER_EXTENSION = "nxmesh.peer"
"""Key in ``scope["extensions"]`` under which the server puts the peer's credentials."""
ROLE_EXTENSION = "nxmesh.role"
"""Key in ``scope["extensions"]`` under which :class:`AccessMiddleware` puts the role."""


class Role(enum.IntEnum):
    viewer = 1
    operator = 2
    admin = 3


@dataclass(frozen=True)
class Peer:
    """The connecting process, as the kernel reports it (SO_PEERCRED)."""

    pid: int
    uid: int
    gid: int


@dataclass(frozen=True)
class AccessPolicy:
    """uid -> role, then primary gid -> role; root and ``daemon_uid`` are admin."""

    users: Mapping[int, Role] = field(default_factory=dict)
    groups: Mapping[int, Role] = field(default_factory=dict)
    daemon_uid: int = field(default_factory=os.geteuid)

    def role_for(self, peer: Peer | None) -> Role | None:
        if peer is None:
            return None
        if peer.uid in (0, self.daemon_uid):
            return Role.admin
        if peer.uid in self.users:
            return self.users[peer.uid]
        return self.groups.get(peer.gid)

    @classmethod
    def from_config(cls, roles: Mapping[str, str], daemon_uid: int | None = None) -> AccessPolicy:
        """Build from the config's ``[api.roles]`` table: keys are ``alice`` or ``uid:1000``
        (a user) or ``group:ops`` / ``gid:1000`` (a group), values a role name."""
        users: dict[int, Role] = {}
        groups: dict[int, Role] = {}
        for key, value in roles.items():
            try:
                role = Role[value]
            except KeyError:
                names = ", ".join(r.name for r in Role)
                raise ValueError(f"api.roles.{key}: {value!r} is not a role ({names})") from None
            kind, sep, name = key.partition(":")
            if not sep:
                kind, name = "user", key
            if kind in ("user", "uid"):
                users[_resolve(name, kind == "uid", pwd.getpwnam, "user", key)] = role
            elif kind in ("group", "gid"):
                groups[_resolve(name, kind == "gid", grp.getgrnam, "group", key)] = role
            else:
                raise ValueError(f"api.roles.{key}: use NAME, uid:N, group:NAME or gid:N")
        uid = os.geteuid() if daemon_uid is None else daemon_uid
        return cls(users=users, groups=groups, daemon_uid=uid)


def _resolve(name: str, numeric: bool, lookup: Any, what: str, key: str) -> int:
    if numeric or name.isdigit():
        if not name.isdigit():
            raise ValueError(f"api.roles.{key}: {name!r} is not a number")
        return int(name)
    try:
        return int(lookup(name)[2])
    except KeyError:
        raise ValueError(f"api.roles.{key}: no {what} named {name!r} on this host") from None


def peer_of(scope: Scope) -> Peer | None:
    raw = (scope.get("extensions") or {}).get(PEER_EXTENSION)
    if not isinstance(raw, Mapping):
        return None
    try:
        return Peer(int(raw["pid"]), int(raw["uid"]), int(raw["gid"]))
    except (KeyError, TypeError, ValueError):
        return None


def role_of(scope: Scope) -> Role | None:
    role = (scope.get("extensions") or {}).get(ROLE_EXTENSION)
    return role if isinstance(role, Role) else None


def require(scope: Scope, needed: Role, action: str) -> None:
    """Raise 403 unless the caller's role is at least ``needed``."""
    role = role_of(scope)
    if role is None or role < needed:
        have = role.name if role is not None else "none"
        raise ApiProblem(
            403,
            "forbidden",
            f"{action} needs the {needed.name} role; this caller has {have}",
            extra={"required_role": needed.name, "role": have},
        )


class AccessMiddleware:
    """Refuse callers without a role (403); record the role of the others in the scope."""

    def __init__(self, app: ASGIApp, policy: AccessPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        peer = peer_of(scope)
        role = self.policy.role_for(peer)
        if role is None:
            who = "an unidentified caller" if peer is None else f"uid {peer.uid}"
            detail = (
                f"{who} has no role on this node: an admin can grant one in the node's "
                "configuration ([api.roles])"
            )
            if scope["type"] == "http":
                await problem_response(ApiProblem(403, "forbidden", detail))(scope, receive, send)
            return
        scope = dict(scope)
        scope["extensions"] = {**(scope.get("extensions") or {}), ROLE_EXTENSION: role}
        await self.app(scope, receive, send)
