"""What the API needs from the daemon (:class:`ApiServices`), and a store-backed
implementation (:class:`LocalServices`) whose membership part is pluggable.

Documents are reached through their :class:`~crdt.store.PersistedDoc`, so an edit is on
disk before it is acknowledged; after every acknowledged edit the API calls
:meth:`ApiServices.published` with the update, which the daemon broadcasts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol, TypedDict

from crdt.documents import MESH_DOCUMENT, WorkspaceDocument, workspace_document
from crdt.schema import Certificate, VirtualHost
from crdt.secrets import SecretError
from crdt.store import PersistedDoc, Store
from crdt.vault import WorkspaceVault
from mesh import Identity
from node.acme import view
from node.api.events import EventHub

__all__ = [
    "ApiServices",
    "Invite",
    "LocalServices",
    "Member",
    "Membership",
    "NoSuchFile",
    "NodeRefused",
    "NodeUnreachable",
    "SecretUnavailable",
    "UnknownNode",
]


class Member(TypedDict):
    """One node as the API shows it."""

    name: str
    key: str
    """Fingerprint of the node's Ed25519 key."""
    address: str
    state: str
    """``alive``, ``suspect``, ``dead``, ``left`` or ``revoked``."""
    labels: dict[str, str]
    workspaces: list[str]
    """``["*"]`` when assigned every workspace, else the ids it is assigned, sorted."""
    metadata: dict[str, Any]
    """What the node publishes: applied revisions, apply state, nginx state, version."""


class Invite(TypedDict):
    token: str
    expires_at: float
    uses: int


class UnknownNode(LookupError):
    """No member of that name (or key fingerprint)."""


class NodeRefused(Exception):
    """The membership service refused the request; the message says why."""


class NodeUnreachable(Exception):
    """Another node did not answer (dead, left, timed out, refused); says why in a line."""


class NoSuchFile(LookupError):
    """Not a file of the node's applied configuration (as the caller's node may see it)."""


class SecretUnavailable(Exception):
    """A secret cannot be sealed here now (no key of the workspace for this node yet...)."""


class Membership(Protocol):
    """Members, labels, assignments, invites and revocation: the mesh side of the API."""

    def members(self) -> list[Member]: ...

    async def set_labels(self, node: str, labels: dict[str, str]) -> Member:
        """Replace the node's labels; raises :class:`UnknownNode`."""
        ...

    async def set_workspaces(self, node: str, workspaces: list[str]) -> Member:
        """Replace the workspaces the node serves (ids, or ``["*"]``) in one durable
        transaction and publish the update; raises :class:`UnknownNode` /
        :class:`NodeRefused` (a revoked node)."""
        ...

    async def create_invite(self, ttl: float, uses: int) -> Invite: ...

    async def revoke(self, node: str) -> Member:
        """Revoke the node for good; raises :class:`UnknownNode` / :class:`NodeRefused`."""
        ...


class ApiServices(Membership, Protocol):
    """Everything the API reaches; the daemon implements it."""

    events: EventHub
    """Where the watch stream reads from; the daemon also publishes peer and member events."""

    @property
    def node_name(self) -> str: ...

    def document(self, name: str) -> PersistedDoc | None:
        """The persisted document ``name`` (``mesh`` or ``workspace:<id>``); None when this
        node does not replicate it. May raise :class:`~crdt.store.StoreError`."""
        ...

    def published(self, doc_name: str, update: bytes) -> None:
        """Called after every acknowledged (fsynced) edit with its update: broadcast it."""
        ...

    def status(self) -> dict[str, Any]:
        """This node and the mesh in brief, for ``GET /v1/status``."""
        ...

    def seal_secret(self, workspace: str, secret_id: str, plaintext: bytes) -> None:
        """Seal ``plaintext`` in the workspace's vault (durably) and broadcast the update;
        :class:`SecretUnavailable` when this node cannot."""
        ...

    def drop_secret(self, workspace: str, secret_id: str) -> None:
        """Delete a sealed secret (best effort)."""
        ...

    def acme_subjects(self, workspace: str) -> list[dict[str, Any]]:
        """The workspace's ACME subjects (node.acme.view.subject_rows)."""
        ...

    def certificate_status(self, workspace: str, certificate: Certificate) -> dict[str, Any]:
        """One certificate's status on this node (node.acme.view.certificate_row)."""
        ...

    async def node_status(self, node: str) -> dict[str, Any]:
        """Node ``node``'s last apply, units and metrics summary (node.report), this
        node's own at once, another's over the mesh; :class:`UnknownNode`,
        :class:`NodeUnreachable`."""
        ...

    async def node_config(self, node: str, path: str | None) -> dict[str, Any]:
        """Node ``node``'s applied files and ``path``'s content (node.report);
        :class:`UnknownNode`, :class:`NodeUnreachable`, :class:`NoSuchFile`."""
        ...


class LocalServices:
    """:class:`ApiServices` over a real :class:`Store`: every document is opened on first
    use (this node replicates everything); membership comes from ``membership``."""

    def __init__(
        self,
        store: Store,
        membership: Membership,
        *,
        node_name: str = "local",
        events: EventHub | None = None,
        on_publish: Callable[[str, bytes], None] | None = None,
        identity: Identity | None = None,
    ) -> None:
        """``identity``: whose vault keys seal secrets (a fresh one by default; this
        node is the workspaces' only key holder)."""
        self.identity = identity or Identity.generate()
        self._vaults: dict[str, WorkspaceVault] = {}
        self.store = store
        self.membership = membership
        self._node_name = node_name
        self.events = events if events is not None else EventHub()
        self._on_publish = on_publish
        self._docs: dict[str, PersistedDoc] = {}

    @property
    def node_name(self) -> str:
        return self._node_name

    def document(self, name: str) -> PersistedDoc | None:
        doc = self._docs.get(name)
        if doc is None:
            doc = self._docs[name] = PersistedDoc.open(self.store, name)
        return doc

    def published(self, doc_name: str, update: bytes) -> None:
        if self._on_publish is not None:
            self._on_publish(doc_name, update)

    def status(self) -> dict[str, Any]:
        docs = {}
        for name in sorted({MESH_DOCUMENT, *self._docs}):
            stats = self.store.stats(name)
            docs[name] = {"log_updates": stats.updates, "log_bytes": stats.bytes}
        members = self.membership.members()
        states: dict[str, int] = {}
        for m in members:
            states[m["state"]] = states.get(m["state"], 0) + 1
        return {"node": self.node_name, "documents": docs, "members": states}

    def members(self) -> list[Member]:
        return self.membership.members()

    async def node_status(self, node: str) -> dict[str, Any]:
        self._only_here(node)
        return {"node": node, "source": "local", "apply": {"apply": "pending"},
                "last_apply": {"state": "pending", "stage": "", "reason": "",
                               "nginx_message": "", "revision": None,
                               "desired_revision": None, "applied_at": None,
                               "updated_at": None, "duration_s": 0.0, "drift": []},
                "quarantined": [], "units": {}, "invalid": [], "metrics": {},
                "filtered": False}  # fmt: skip

    async def node_config(self, node: str, path: str | None) -> dict[str, Any]:
        self._only_here(node)
        if path is not None:
            raise NoSuchFile(f"{path}: nothing has been applied on {node}")
        return {"node": node, "source": "local", "revision": None, "applied_at": None,
                "files": [], "total": 0, "truncated": False, "filtered": False,
                "file": None}  # fmt: skip

    def _only_here(self, node: str) -> None:
        """This API renders nothing and has no mesh to ask through."""
        if node != self.node_name:
            raise NodeUnreachable(f"node {node!r} cannot be asked: this API has no mesh")

    async def set_labels(self, node: str, labels: dict[str, str]) -> Member:
        return await self.membership.set_labels(node, labels)

    async def set_workspaces(self, node: str, workspaces: list[str]) -> Member:
        return await self.membership.set_workspaces(node, workspaces)

    async def create_invite(self, ttl: float, uses: int) -> Invite:
        return await self.membership.create_invite(ttl, uses)

    async def revoke(self, node: str) -> Member:
        return await self.membership.revoke(node)

    # -- secrets and certificates (this node alone holds every workspace's key) --

    def _vault(self, workspace: str) -> WorkspaceVault:
        name = workspace_document(workspace)
        persisted = self.document(name)
        assert persisted is not None
        vault = self._vaults.get(workspace)
        if vault is None or vault.persisted is not persisted:
            me = self.identity.public_key
            vault = WorkspaceVault(persisted, workspace, self.identity, may_hold=me.__eq__)
            self._vaults[workspace] = vault
        return vault

    def seal_secret(self, workspace: str, secret_id: str, plaintext: bytes) -> None:
        vault = self._vault(workspace)
        try:
            try:
                update = vault.put(secret_id, plaintext)
            except SecretError:
                rotated = vault.maintain([self.identity.public_key], int(time.time()))
                if rotated is not None:
                    self.published(vault.persisted.name, rotated)
                update = vault.put(secret_id, plaintext)
        except SecretError as exc:
            raise SecretUnavailable(str(exc)) from None
        if update is not None:
            self.published(vault.persisted.name, update)

    def drop_secret(self, workspace: str, secret_id: str) -> None:
        vault = self._vault(workspace)
        update = vault.delete(secret_id)
        if update is not None:
            self.published(vault.persisted.name, update)

    def _workspace(self, workspace: str) -> tuple[Any, dict[str, Any], dict[str, Any]]:
        persisted = self.document(workspace_document(workspace))
        assert persisted is not None
        doc = WorkspaceDocument(persisted.doc)
        vhosts, _ = doc.list(VirtualHost)
        certs, _ = doc.list(Certificate)
        return persisted.doc, {v.id: v for v in vhosts}, {c.id: c for c in certs}

    def acme_subjects(self, workspace: str) -> list[dict[str, Any]]:
        doc, vhosts, certs = self._workspace(workspace)
        now = time.time()
        return view.subject_rows(workspace, doc, vhosts, certs, now, lambda x: x.expires > now)

    def certificate_status(self, workspace: str, certificate: Certificate) -> dict[str, Any]:
        subjects = self.acme_subjects(workspace)
        return view.certificate_row(
            certificate, subjects, time.time(), installed=None, install_error=None
        )
