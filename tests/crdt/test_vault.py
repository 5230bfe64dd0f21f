"""Secrets in a workspace document (real SQLite stores): sealed at rest, opened by
serving members, rotated when a holder is revoked so it learns nothing new."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc, Map

from crdt.membership import MeshState
from crdt.secrets import SecretError
from crdt.store import PersistedDoc, Store
from crdt.trust import Admission, Genesis, Revocation
from crdt.vault import SEALED, WorkspaceVault
from mesh import Identity

ROOT, A, B = (Identity.from_seed(bytes([i + 7]) * 32) for i in range(3))
NOW = 1_800_000_000
PEM = b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIAAAAAAAAAAAAAAAAAAAAAAA\n-----END"


class Node:
    """One node's mesh state and its vault over the shop workspace, on its own store."""

    def __init__(self, tmp: Path, identity: Identity, genesis: Genesis) -> None:
        self.identity = identity
        self.store = Store.open(tmp / f"{identity.fingerprint}.db")
        rng = random.Random(identity.public_key)
        self.mesh = MeshState(PersistedDoc.open(self.store, "mesh", rng), genesis)
        self.ws = PersistedDoc.open(self.store, "workspace:shop", rng)
        self.vault = WorkspaceVault(
            self.ws, "shop", identity, may_hold=lambda k: self.mesh.serves(k, "shop")
        )


def _sync(nodes: list[Node]) -> None:
    """Exchange every document between every pair (what anti-entropy does)."""
    for src in nodes:
        for dst in nodes:
            if src is not dst:
                dst.mesh.persisted.apply_remote(src.mesh.persisted.doc.get_update())
                dst.ws.apply_remote(src.ws.doc.get_update())


@pytest.fixture
def fleet(tmp_path: Path) -> list[Node]:
    genesis = Genesis.create(ROOT, "root", NOW, mesh_id=b"v" * 16)
    nodes = [Node(tmp_path, ident, genesis) for ident in (ROOT, A, B)]
    admissions = [
        Admission.create(ROOT, i.public_key, "n", mesh_id=genesis.mesh_id, now=NOW) for i in (A, B)
    ]
    nodes[0].mesh.add_records([genesis, *admissions])
    for ident in (ROOT, A, B):
        nodes[0].mesh.assign(ident.public_key, "shop")
    _sync(nodes)
    return nodes


def test_a_secret_is_sealed_in_the_document_and_opens_on_every_serving_node(
    fleet: list[Node],
) -> None:
    root = fleet[0]
    assert root.vault.maintain(root.mesh.servers("shop"), NOW) is not None
    root.vault.put("cert-1", PEM)
    _sync(fleet)
    for node in fleet:
        assert node.vault.get("cert-1") == PEM
    # Never in clear: not in the document's bytes, not in the SQLite file.
    assert PEM not in root.ws.doc.get_update()
    files = list(root.store.path.parent.glob(f"{root.store.path.name}*"))  # db, -wal, -shm
    assert b"".join(f.read_bytes() for f in files).count(b"BEGIN PRIVATE KEY") == 0
    assert root.vault.secret_ids() == ["cert-1"]


def test_a_revoked_holder_cannot_open_what_is_sealed_after_rotation(fleet: list[Node]) -> None:
    root, a, b = fleet
    root.vault.maintain(root.mesh.servers("shop"), NOW)
    root.vault.put("old", b"old secret")
    _sync(fleet)
    assert b.vault.get("old") == b"old secret"
    b_view_before = b.ws.doc.get_update()

    root.mesh.add_records([Revocation.create(ROOT, B.public_key, mesh_id=b"v" * 16, now=NOW + 10)])
    _sync([root, a])  # B is cut off: it receives nothing more
    # Sealing refuses until the key is rotated: B still holds the current one.
    with pytest.raises(SecretError, match="non-members"):
        root.vault.put("new", b"new secret")
    assert a.vault.maintain(a.mesh.servers("shop"), NOW + 11) is not None
    _sync([root, a])
    root.vault.put("new", b"new secret")
    _sync([root, a])
    assert a.vault.get("new") == b"new secret"
    assert a.vault.get("old") == b"old secret"  # re-sealed under the new key
    # Even given the whole workspace document now, B opens neither the new secret nor
    # the re-sealed old one: it has no wrap of the new key.
    b.ws.apply_remote(root.ws.doc.get_update())
    with pytest.raises(SecretError, match="not wrapped for it"):
        b.vault.get("new")
    with pytest.raises(SecretError, match="not wrapped for it"):
        b.vault.get("old")
    assert b_view_before  # what B had before the rotation is all it ever learned


def test_a_newly_assigned_node_gets_the_key_from_a_holder(fleet: list[Node]) -> None:
    root, a, b = fleet
    root.mesh.assign(B.public_key, "shop", serve=False)
    _sync(fleet)
    root.vault.maintain(root.mesh.servers("shop"), NOW)
    root.vault.put("k", b"secret")
    _sync(fleet)
    with pytest.raises(SecretError):
        b.vault.get("k")
    # B is assigned; it cannot wrap for itself, a holder does on its next maintain.
    root.mesh.assign(B.public_key, "shop")
    _sync(fleet)
    assert b.vault.maintain(b.mesh.servers("shop"), NOW) is None
    assert a.vault.maintain(a.mesh.servers("shop"), NOW + 1) is not None
    _sync(fleet)
    assert b.vault.get("k") == b"secret"
    # Everyone holds the newest key now: nothing left to do anywhere.
    assert all(n.vault.maintain(n.mesh.servers("shop"), NOW + 2) is None for n in fleet)


def test_a_blob_moved_to_another_secret_id_does_not_open(fleet: list[Node]) -> None:
    root = fleet[0]
    root.vault.maintain(root.mesh.servers("shop"), NOW)
    root.vault.put("cert-a", b"A")
    blob = root.ws.doc.get(SEALED, type=Map)["cert-a"]

    def move(doc: Doc[Any]) -> None:
        doc.get(SEALED, type=Map)["cert-b"] = bytes(blob)

    root.ws.commit(move)
    with pytest.raises(SecretError):
        root.vault.get("cert-b")
    with pytest.raises(SecretError, match="no sealed secret"):
        root.vault.get("missing")
