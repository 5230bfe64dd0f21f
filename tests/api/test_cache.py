"""The cache of validated entities follows local edits, peers' updates and a rebuilt
document, and re-reads only what changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pycrdt import Doc, Map

from crdt.documents import WorkspaceDocument
from crdt.schema import Entity, Invalid, Upstream
from crdt.store import PersistedDoc, Store
from node.api.cache import DocumentCache


def upstream(name: str, address: str = "10.0.0.1:80") -> dict[str, Any]:
    return {"name": name, "servers": [{"address": address}]}


class CountingDocument(WorkspaceDocument):
    reads = 0

    def get(self, kind: type[Entity], ident: str) -> Any:
        CountingDocument.reads += 1
        return super().get(kind, ident)


def test_follows_local_and_peer_updates_reading_only_what_changed(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.db")
    persisted = PersistedDoc.open(store, "workspace:w")

    def create_all(doc: WorkspaceDocument) -> list[Upstream]:
        return [doc.create(Upstream, upstream(f"u{i}")) for i in range(20)]

    made, _ = WorkspaceDocument.edit(persisted, create_all)
    cache = DocumentCache(WorkspaceDocument.KINDS)
    good, bad = cache.refresh(CountingDocument(persisted.doc))
    assert set(good["upstreams"]) == {u.id for u in made}

    CountingDocument.reads = 0
    WorkspaceDocument.edit(persisted, lambda d: d.patch(Upstream, made[0].id, {"keepalive": 4}))
    good, _ = cache.refresh(CountingDocument(persisted.doc))
    changed = good["upstreams"][made[0].id]
    assert isinstance(changed, Upstream)
    assert changed.keepalive == 4
    assert CountingDocument.reads == 1  # one entity changed, one read

    # a peer's update: a new upstream, and a bad value in another
    peer: Doc[Any] = Doc()
    peer.apply_update(persisted.doc.get_update())
    with peer.transaction():
        root = peer.get("upstreams", type=Map)
        root["fresh"] = Map({"id": "fresh", **upstream("fresh")})
        root[made[1].id]["servers"] = [{"address": "nope"}]
    persisted.apply_remote(peer.get_update(persisted.doc.get_state()))
    CountingDocument.reads = 0
    good, bad = cache.refresh(CountingDocument(persisted.doc))
    assert CountingDocument.reads == 2
    assert "fresh" in good["upstreams"]
    assert made[1].id not in good["upstreams"]
    assert isinstance(bad["upstreams"][made[1].id], Invalid)

    WorkspaceDocument.edit(persisted, lambda d: d.delete(Upstream, "fresh"))
    good, _ = cache.refresh(WorkspaceDocument(persisted.doc))
    assert "fresh" not in good["upstreams"]


def test_a_rebuilt_document_is_read_again(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.db")
    persisted = PersistedDoc.open(store, "workspace:w")
    WorkspaceDocument.edit(persisted, lambda d: d.create(Upstream, upstream("a")))
    cache = DocumentCache(WorkspaceDocument.KINDS)
    assert len(cache.refresh(WorkspaceDocument(persisted.doc))[0]["upstreams"]) == 1
    other = PersistedDoc.open(store, "workspace:w")  # same store, a new Doc object
    WorkspaceDocument.edit(other, lambda d: d.create(Upstream, upstream("b")))
    assert len(cache.refresh(WorkspaceDocument(other.doc))[0]["upstreams"]) == 2
