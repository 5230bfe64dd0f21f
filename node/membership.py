"""The API's view of the mesh (node.api.services.Membership): members with their names,
labels, assigned workspaces and published status; invites; revocation. Labels are
desired state (an operator's), so they live in the mesh document (``node_labels``: node
key hex -> JSON); each node copies its own into its metadata. Assignments are the mesh
document's ``assignments`` (crdt.membership).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from pycrdt import Doc, Map

from crdt.membership import ALL_WORKSPACES
from crdt.trust import Invite, Revocation, Token
from mesh import Member, MeshNode, fingerprint
from node.api.services import Invite as InviteInfo
from node.api.services import Member as MemberInfo
from node.api.services import NodeRefused, UnknownNode
from node.config import format_host_port
from node.meta import NodeMeta
from node.replica import Replica

__all__ = ["LABELS", "MeshMembership"]

LABELS = "node_labels"
"""Top-level Map of the mesh document: node key hex -> JSON object of labels."""
MAX_LABELS = 32
MAX_SEEDS_IN_TOKEN = 5


class MeshMembership:
    """Members, labels, invites and revocation for the API."""

    def __init__(
        self, replica: Replica, node: Callable[[], MeshNode], publish: Callable[[str, bytes], None]
    ) -> None:
        self.replica = replica
        self._node = node
        self._publish = publish

    # ------------------------------------------------------------------ reading

    def labels(self, key: bytes) -> dict[str, str]:
        raw = self.replica.mesh_doc.doc.get(LABELS, type=Map).get(key.hex())
        try:
            value = json.loads(raw) if isinstance(raw, str) else {}
        except ValueError:
            return {}
        if not isinstance(value, dict):
            return {}
        return {str(k): str(v) for k, v in value.items()}

    def workspaces(self, key: bytes) -> list[str]:
        """``["*"]`` for a node assigned every workspace, else its workspace ids, sorted
        (nothing for a node that is not a member)."""
        mesh = self.replica.mesh
        if mesh.serves_all(key):
            return [ALL_WORKSPACES]
        return sorted(mesh.workspaces_of(key))

    def _info(
        self, key: bytes, member: Member | None, known: list[str] | None = None
    ) -> MemberInfo:
        if known is None:
            known = [w.id for w in self.replica.workspaces()]
        verifier = self.replica.mesh.verifier
        meta = NodeMeta.unpack(member.meta) if member is not None else None
        name = verifier.known_names.get(key) or (meta.name if meta else fingerprint(key))
        if key in verifier.revoked:
            state = "revoked"
        elif member is None:
            state = "unknown"
        else:
            state = member.state.name.lower()
        return {
            "name": name,
            "key": fingerprint(key),
            "address": format_host_port(member.addr) if member is not None else "",
            "state": state,
            "labels": self.labels(key),
            "workspaces": self.workspaces(key),
            "metadata": meta.to_json(known) if meta is not None else {},
        }

    def members(self) -> list[MemberInfo]:
        mesh = self.replica.mesh
        seen = {m.key: m for m in self._node().members()}
        # Revoked nodes stay listed (operators audit them); pre-emptive bans of keys that
        # were never admitted do not.
        verifier = mesh.verifier
        keys = set(mesh.members) | {k for k in verifier.revoked if k in verifier.known_names}
        known = [w.id for w in self.replica.workspaces()]
        infos = (self._info(k, seen.get(k), known) for k in keys)
        return sorted(infos, key=lambda m: m["name"])

    def find(self, node: str) -> bytes:
        """A node's key by name or key fingerprint (prefix), a member's before a revoked
        node's (as listed: revoked nodes keep their names); :class:`UnknownNode`."""
        members = self.replica.mesh.members  # first: brings the verifier up to date
        verifier = self.replica.mesh.verifier
        revoked = {k for k in verifier.revoked if k in verifier.known_names}
        candidates = {k for k in members if verifier.known_names.get(k) == node}
        if not candidates:
            candidates = {k for k in revoked if verifier.known_names[k] == node}
        if not candidates:
            candidates = {k for k in members | revoked if fingerprint(k).startswith(node)}
        if len(candidates) != 1:
            raise UnknownNode(f"no single node named {node!r}")
        return candidates.pop()

    # ------------------------------------------------------------------ writing

    async def set_labels(self, node: str, labels: dict[str, str]) -> MemberInfo:
        key = self.find(node)
        if len(labels) > MAX_LABELS:
            raise NodeRefused(f"at most {MAX_LABELS} labels")
        text = json.dumps(dict(sorted(labels.items())))

        def write(doc: Doc[Any]) -> None:
            doc.get(LABELS, type=Map)[key.hex()] = text

        update = self.replica.mesh_doc.commit(write)
        if update is not None:
            self._publish(self.replica.mesh_doc.name, update)
        return self._info(key, self._node().member(key))

    async def set_workspaces(self, node: str, workspaces: list[str]) -> MemberInfo:
        key = self.find(node)
        mesh = self.replica.mesh
        if not mesh.is_member(key):  # refreshes the verifier first
            why = "revoked" if key in mesh.verifier.revoked else "not a member"
            raise NodeRefused(f"{node} is {why}: it cannot be assigned workspaces")
        update = mesh.replace_assignments(key, workspaces)
        if update is not None:
            self._publish(self.replica.mesh_doc.name, update)
        return self._info(key, self._node().member(key))

    async def create_invite(self, ttl: float, uses: int) -> InviteInfo:
        replica = self.replica
        now = int(time.time())
        invite, secret = Invite.create(
            replica.identity, mesh_id=replica.genesis.mesh_id, now=now, ttl=int(ttl), uses=uses
        )
        update = replica.mesh.add_records([invite])
        if update is not None:
            self._publish(replica.mesh_doc.name, update)
        token = Token(
            replica.genesis.mesh_id, replica.genesis.key, self._seeds(), invite.id, secret
        )
        return {"token": token.encode(), "expires_at": float(invite.expires_at), "uses": uses}

    def _seeds(self) -> tuple[str, ...]:
        """This node first, then a few alive members: any of them can admit."""
        node = self._node()
        own = format_host_port(node.addr)
        others = [
            format_host_port(m.addr)
            for m in node.members()
            if m.key != node.key and m.state.name == "ALIVE" and self.replica.mesh.is_member(m.key)
        ]
        return (own, *others[: MAX_SEEDS_IN_TOKEN - 1])

    async def revoke(self, node: str) -> MemberInfo:
        key = self.find(node)
        replica = self.replica
        if key in replica.mesh.verifier.revoked:
            raise NodeRefused(f"{node} is already revoked")
        me = replica.mesh.verifier.names.get(replica.identity.public_key, "?")
        revocation = Revocation.create(
            replica.identity,
            key,
            mesh_id=replica.genesis.mesh_id,
            now=int(time.time()),
            reason=f"revoked through the API of {me}",
        )
        update = replica.mesh.add_records([revocation])
        if update is not None:
            self._publish(replica.mesh_doc.name, update)
        replica.changed(replica.mesh_doc.name)
        return self._info(key, self._node().member(key))
