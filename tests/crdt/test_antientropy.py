"""Anti-entropy legs (pure, on real stores): in-sync replicas exchange no diff even after
deletions; a lost deletion alone is detected by the delete-set digest and repaired."""

from __future__ import annotations

import random
from functools import partial
from pathlib import Path

import msgpack

from crdt.documents import WorkspaceDocument
from crdt.replication import Replicator
from crdt.schema import VirtualHost
from crdt.store import PersistedDoc, Store
from crdt.yjs import delete_set, digest

DOC = "workspace:ae"


def _vhost(ident: str) -> VirtualHost:
    return VirtualHost.model_validate(
        {
            "id": ident,
            "name": ident,
            "server_names": [f"{ident}.example.com"],
            "locations": [{"path": "/", "action": "return", "status": 204}],
        }
    )


def _put(ws: WorkspaceDocument, *, ident: str) -> None:
    ws.put(_vhost(ident))


def _delete(ws: WorkspaceDocument, *, ident: str) -> None:
    ws.delete(VirtualHost, ident)


def _replica(tmp: Path, name: str) -> tuple[Replicator, PersistedDoc]:
    store = Store.open(tmp / f"{name}.db")
    doc = PersistedDoc.open(store, DOC, random.Random(name))
    replicator = Replicator(lambda _k: True)
    replicator.replicate(DOC, doc)
    return replicator, doc


def _exchange(a: Replicator, b: Replicator) -> tuple[dict[str, bytes], bytes]:
    """One three-leg exchange a -> b; the diffs b sent and a's final leg."""
    reply = b.merge_remote_state(b"a", a.local_state(b"b", join=False), join=False)
    final = a.merge_reply(b"b", reply, join=False)
    b.merge_final(b"a", final)
    return msgpack.unpackb(reply)["diff"], final


def test_in_sync_replicas_send_no_diff_even_after_deletions(tmp_path: Path) -> None:
    ra, a = _replica(tmp_path, "a")
    rb, b = _replica(tmp_path, "b")
    for i in range(20):
        WorkspaceDocument.edit(a, partial(_put, ident=f"v{i}"))
    for i in range(0, 20, 2):
        WorkspaceDocument.edit(a, partial(_delete, ident=f"v{i}"))
    assert delete_set(a.doc)
    _exchange(ra, rb)  # b catches up
    assert delete_set(b.doc) == delete_set(a.doc)
    assert digest(b.doc) == digest(a.doc)
    diff, final = _exchange(ra, rb)
    assert diff == {}
    assert final == b""


def test_a_lost_deletion_is_repaired_although_the_clocks_agree(tmp_path: Path) -> None:
    ra, a = _replica(tmp_path, "a")
    rb, b = _replica(tmp_path, "b")
    WorkspaceDocument.edit(a, lambda ws: ws.put(_vhost("keep")))
    WorkspaceDocument.edit(a, lambda ws: ws.put(_vhost("gone")))
    _exchange(ra, rb)
    WorkspaceDocument.edit(a, lambda ws: ws.delete(VirtualHost, "gone"))  # the broadcast is lost
    assert a.doc.get_state() == b.doc.get_state()  # a deletion adds no clock
    assert WorkspaceDocument(b.doc).get(VirtualHost, "gone") is not None
    diff, _ = _exchange(rb, ra)  # b starts; a sees b's digest differ and sends its deletions
    assert diff
    assert WorkspaceDocument(b.doc).get(VirtualHost, "gone") is None
    assert digest(a.doc) == digest(b.doc)
