"""This node's replica of the desired state: the store, the mesh document, the workspace
documents it serves, and the Replicator that mesh/ talks to.

What the node serves follows the mesh document: when an assignment (or the set of
workspaces, for a node assigned ``*``) changes, :meth:`Replica.refresh` opens the
documents newly served and stops replicating the others. Listeners hear of every change,
local or from a peer, by document name.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from crdt.documents import (
    MESH_DOCUMENT,
    EntityMemo,
    MeshDocument,
    WorkspaceDocument,
    workspace_document,
    workspace_of,
)
from crdt.membership import MeshState
from crdt.replication import Replicator
from crdt.schema import STAMP_FIELDS, Invalid, MeshSettings, Workspace, WorkspaceState
from crdt.store import PersistedDoc, Store
from crdt.trust import Genesis
from crdt.vault import WorkspaceVault
from mesh import Identity

__all__ = ["DesiredState", "Replica"]


@dataclass(frozen=True)
class DesiredState:
    """A consistent read of everything this node renders."""

    settings: MeshSettings
    workspaces: dict[str, WorkspaceState]
    digest: str
    """Digest of the documents' content (equal on nodes that hold the same state); the
    author stamps and the audit log are not part of it."""
    invalid: list[str]
    """Entities skipped as invalid, as ``<document>: <kind> <id>: <reason>``."""
    workspace_digests: dict[str, str] = field(default_factory=dict)
    """Per workspace: a digest of the mesh settings and that workspace's content."""


class Replica:
    """Documents and their replication for one node (synchronous; runs on the trio
    thread - pycrdt documents are never shared with other threads)."""

    def __init__(
        self,
        store: Store,
        identity: Identity,
        genesis: Genesis,
        *,
        admit: Callable[[bytes, bytes], bytes | None] | None = None,
    ) -> None:
        """``admit``: answers strangers' admission requests (see crdt.joining)."""
        self.store = store
        self.identity = identity
        self.genesis = genesis
        self.mesh_doc = PersistedDoc.open(store, MESH_DOCUMENT)
        self.mesh = MeshState(self.mesh_doc, genesis)
        self.replicator = Replicator(self.mesh.is_member, self.mesh.audience, admit)
        self.replicator.replicate(MESH_DOCUMENT, self.mesh_doc)
        self.replicator.on_applied = partial(self.changed, origin="peer")
        self.workspace_docs: dict[str, PersistedDoc] = {}
        self.vaults: dict[str, WorkspaceVault] = {}
        self.listeners: list[Callable[[str, str], None]] = []
        """Called with (document name, ``local`` or ``peer``) after every change."""
        self._mesh_generation = -1
        self._memos: dict[str, EntityMemo] = {}
        self._reads: dict[str, tuple[int, Any, tuple[WorkspaceState, list[str], bytes]]] = {}
        """Workspace -> (document generation, document, what desired() read)."""
        self.refresh()

    # ------------------------------------------------------------------ documents

    def document(self, name: str) -> PersistedDoc | None:
        """A replicated document by name, None when this node does not serve it."""
        if name == MESH_DOCUMENT:
            return self.mesh_doc
        workspace = workspace_of(name)
        return None if workspace is None else self.workspace_docs.get(workspace)

    def workspaces(self) -> list[Workspace]:
        valid, _ = MeshDocument(self.mesh_doc.doc).list(Workspace)
        return valid

    def served(self) -> set[str]:
        """Ids of the workspaces this node serves now."""
        me = self.identity.public_key
        known = {w.id for w in self.workspaces()}
        if self.mesh.serves_all(me):
            return known
        return {ws for ws in self.mesh.workspaces_of(me) if ws in known}

    def refresh(self) -> bool:
        """Follow the mesh document: open newly served workspaces, drop the others.
        Returns whether the served set changed."""
        if self.mesh_doc.generation == self._mesh_generation:
            return False
        self._mesh_generation = self.mesh_doc.generation
        wanted = self.served()
        current = set(self.workspace_docs)
        for ws in wanted - current:
            name = workspace_document(ws)
            doc = PersistedDoc.open(self.store, name)
            self.workspace_docs[ws] = doc
            self.replicator.replicate(name, doc)
            self.vaults[ws] = WorkspaceVault(
                doc, ws, self.identity, may_hold=partial(_serves, self.mesh, ws)
            )
        for ws in current - wanted:
            self.replicator.forget(workspace_document(ws))
            del self.workspace_docs[ws]
            del self.vaults[ws]
            self._memos.pop(ws, None)
            self._reads.pop(ws, None)
        return wanted != current

    def changed(self, name: str, origin: str = "local") -> None:
        """A document changed (a local commit, or a peer's update: ``origin="peer"``):
        tell the listeners."""
        if name == MESH_DOCUMENT:
            self.refresh()
        for listener in list(self.listeners):
            listener(name, origin)

    # ------------------------------------------------------------------ reading

    def _read_workspace(
        self, ws: str, doc: PersistedDoc
    ) -> tuple[WorkspaceState, list[str], bytes]:
        """A workspace's valid entities, what was skipped and its content digest input:
        kept while the document does not move; only changed entities validated again."""
        cached = self._reads.get(ws)
        if cached is not None and cached[0] == doc.generation and cached[1] is doc.doc:
            return cached[2]
        memo = self._memos.setdefault(ws, EntityMemo())
        read = WorkspaceDocument(doc.doc).read(memo)
        content = json.dumps(_unstamped(read.stored), sort_keys=True).encode()
        result = (read.state, [_described(ws, bad) for bad in read.invalid], content)
        self._reads[ws] = (doc.generation, doc.doc, result)
        return result

    def desired(self) -> DesiredState:
        """Everything to render, read in one go (call on the trio thread)."""
        mesh = MeshDocument(self.mesh_doc.doc)
        settings = mesh.settings()
        invalid: list[str] = []
        if isinstance(settings, Invalid):
            invalid.append(f"{MESH_DOCUMENT}: settings: {settings.reason}")
            settings = MeshSettings()
        shared = settings.model_dump_json(exclude=set(STAMP_FIELDS)).encode()
        digest = hashlib.sha256(shared)
        per_workspace: dict[str, str] = {}
        workspaces: dict[str, WorkspaceState] = {}
        for ws, doc in sorted(self.workspace_docs.items()):
            state, bad_ones, content = self._read_workspace(ws, doc)
            workspaces[ws] = state
            invalid.extend(bad_ones)
            digest.update(ws.encode() + b"\0")
            digest.update(content)
            per_workspace[ws] = hashlib.sha256(shared + content).hexdigest()[:12]
        return DesiredState(settings, workspaces, digest.hexdigest()[:12], invalid, per_workspace)


def _described(ws: str, bad: Invalid) -> str:
    return f"{workspace_document(ws)}: {bad.kind} {bad.id}: {bad.path} {bad.reason}"


def _unstamped(collections: dict[str, Any]) -> dict[str, Any]:
    """Collections without the entities' author stamps: who changed something last is
    not desired state (a stamp alone never changes the digest)."""
    return {
        name: {
            key: {k: v for k, v in entity.items() if k not in STAMP_FIELDS}
            if isinstance(entity, dict)
            else entity
            for key, entity in items.items()
        }
        if isinstance(items, dict)
        else items
        for name, items in collections.items()
    }


def _serves(mesh: MeshState, workspace: str, node_key: bytes) -> bool:
    return mesh.serves(node_key, workspace)
