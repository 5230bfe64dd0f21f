"""Author stamps and the audit log in documents: written with real changes only, merged
and bounded across replicas, lenient to what a peer wrote, invisible to render/."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from pycrdt import Array, Doc, Map

from crdt.audit import AUDIT, AUDIT_LIMIT, read_audit, record
from crdt.documents import WorkspaceDocument
from crdt.schema import STAMP_FIELDS, Author, MeshSettings, Stamp, Upstream, VirtualHost
from render import NodeView, render
from tests.crdt.strategies import upstream_dict

ALICE = Stamp.now("node-1", "alice", "operator")
BOB = Stamp.now("node-2", "bob", "admin")


def _ws(client_id: int) -> WorkspaceDocument:
    return WorkspaceDocument(Doc(client_id=client_id))


def _sync_all(*docs: WorkspaceDocument) -> None:
    for a, b in itertools.permutations(docs, 2):
        b.doc.apply_update(a.doc.get_update(b.doc.get_state()))


def _app(**over: Any) -> dict[str, Any]:
    data = upstream_dict(**over)
    data.pop("id", None)
    return data


def test_a_stamped_edit_records_its_author_in_the_entity_and_the_log() -> None:
    ws = _ws(1)
    up = ws.create(Upstream, _app(), ALICE)
    stored = ws.get(Upstream, up.id)
    assert isinstance(stored, Upstream)
    assert stored.changed_by == Author(node="node-1", user="alice", role="operator")
    assert stored.changed_at == ALICE.at
    ws.patch(Upstream, up.id, {"keepalive": 8}, BOB)
    patched = ws.get(Upstream, up.id)
    assert isinstance(patched, Upstream)
    assert patched.changed_by is not None
    assert patched.changed_by.user == "bob"
    ws.delete(Upstream, up.id, BOB)
    log = ws.audit()
    assert [(e.op, e.id, e.changed_by.user) for e in log] == [
        ("created", up.id, "alice"),
        ("updated", up.id, "bob"),
        ("deleted", up.id, "bob"),
    ]
    assert log[1].fields == ("keepalive",)
    assert log[2].name == up.name  # the name it had: the entity itself is gone


def test_nothing_changed_writes_no_stamp_and_no_entry() -> None:
    ws = _ws(1)
    up = ws.create(Upstream, _app(), ALICE)
    before = ws.doc.get_state()
    current = ws.get(Upstream, up.id)
    assert isinstance(current, Upstream)
    assert ws.put(current, BOB) == []
    assert ws.patch(Upstream, up.id, {"keepalive": up.keepalive}, BOB).changed_by == ALICE.author
    assert ws.doc.get_state() == before
    assert len(ws.audit()) == 1


def test_an_entity_without_a_stamp_reads_fine_and_an_unstamped_put_keeps_the_stamp() -> None:
    ws = _ws(1)
    up = Upstream.model_validate(upstream_dict())
    ws.put(up)  # an older version, or the node itself: no author
    stored = ws.get(Upstream, up.id)
    assert isinstance(stored, Upstream)
    assert (stored.changed_by, stored.changed_at) == (None, None)
    assert not set(STAMP_FIELDS) & set(ws.to_json()["upstreams"][up.id])
    ws.patch(Upstream, up.id, {"keepalive": 4}, ALICE)
    ws.put(Upstream.model_validate({**upstream_dict(), "keepalive": 5}))
    again = ws.get(Upstream, up.id)
    assert isinstance(again, Upstream)
    assert again.keepalive == 5
    assert again.changed_by == ALICE.author


def test_a_stamp_a_peer_wrote_badly_reads_as_none_and_the_entity_stays_valid() -> None:
    ws = _ws(1)
    up = ws.create(Upstream, _app(), ALICE)
    with ws.doc.transaction():
        entity = ws.doc.get("upstreams", type=Map)[up.id]
        entity["changed_by"] = "someone"
        entity["changed_at"] = "yesterday"
    stored = ws.get(Upstream, up.id)
    assert isinstance(stored, Upstream)
    assert (stored.changed_by, stored.changed_at) == (None, None)
    ws.doc.get(AUDIT, type=Array).append({"op": "created"})  # an entry that is not one
    assert len(ws.audit()) == 1


def test_the_log_is_bounded_and_small_whatever_the_number_of_edits() -> None:
    ws = _ws(1)
    up = ws.create(Upstream, _app(), ALICE)
    for i in range(3 * AUDIT_LIMIT):
        ws.patch(Upstream, up.id, {"keepalive": i % 50 + 1}, ALICE)
    log = ws.audit()
    assert len(log) == AUDIT_LIMIT
    assert len(ws.doc.get_update()) < 80_000  # trimmed entries leave merged tombstones


def test_replicas_converge_on_one_log_with_every_concurrent_entry() -> None:
    a, b = _ws(1), _ws(2)
    up = a.create(Upstream, _app(), ALICE)
    _sync_all(a, b)
    a.patch(Upstream, up.id, {"keepalive": 2}, ALICE)
    b.patch(Upstream, up.id, {"description": "by bob"}, BOB)
    _sync_all(a, b)
    assert [e.entry for e in a.audit()] == [e.entry for e in b.audit()]
    assert {(e.changed_by.user, e.fields) for e in a.audit()[1:]} == {
        ("alice", ("keepalive",)),
        ("bob", ("description",)),
    }
    # the stamp's two keys were written together: one author's name and time win both
    stored = b.get(Upstream, up.id)
    assert isinstance(stored, Upstream)
    winner = ALICE if stored.changed_by == ALICE.author else BOB
    assert stored.changed_at == winner.at


def test_concurrent_trims_keep_the_log_near_its_limit() -> None:
    docs = [_ws(i) for i in (1, 2, 3)]
    for i in range(3 * AUDIT_LIMIT):
        record(docs[i % 3].doc, ALICE, "updated", "upstreams", f"u{i}")
        if i % 7 == 0:
            _sync_all(*docs)
    _sync_all(*docs)
    sizes = {len(d.audit()) for d in docs}
    assert len(sizes) == 1
    assert AUDIT_LIMIT - 10 <= sizes.pop() <= AUDIT_LIMIT + 10


def test_reading_only_what_is_new() -> None:
    doc: Doc[Any] = Doc()
    first = record(doc, ALICE, "created", "upstreams", "u1")
    read = read_audit(doc)
    assert read.ids == {first.entry}
    second = record(doc, BOB, "deleted", "upstreams", "u1")
    newer = read_audit(doc, skip=read.ids)
    assert [e.entry for e in newer.entries] == [second.entry]
    assert newer.ids == {first.entry, second.entry}


def test_a_stamp_alone_changes_neither_the_rendered_tree_nor_its_revision() -> None:
    one, two = _ws(1), _ws(2)
    up = Upstream.model_validate(upstream_dict(servers=[{"address": "10.0.0.1:8080"}]))
    site = VirtualHost.model_validate(
        {"id": "web", "name": "shop", "server_names": ["shop.example.test"],
         "locations": [{"path": "/", "upstream": "app"}]}
    )  # fmt: skip
    carol = Stamp(Author(node="n9", user="carol", role="admin"), datetime.now(UTC))
    for doc, stamp in ((one, ALICE), (two, carol)):
        doc.put(up, stamp)
        doc.put(site, stamp)
    view = NodeView(node="n1", prefix="/tmp/nx")
    a = render(MeshSettings(), {"w": one.snapshot()}, view)
    b = render(MeshSettings(), {"w": two.snapshot()}, view)
    assert any(site.server_names[0].encode() in data for data in a.files.values())
    assert a.files == b.files
    assert a.revision == b.revision


def test_an_invalid_stored_entity_is_deleted_and_logged_without_its_name() -> None:
    ws = _ws(1)
    up = ws.create(Upstream, _app())
    ws.doc.get("upstreams", type=Map)[up.id]["name"] = ""  # e.g. written by a broken peer
    ws.delete(Upstream, up.id, BOB)
    assert ws.get(Upstream, up.id) is None
    (entry,) = ws.audit()
    assert (entry.op, entry.id, entry.name) == ("deleted", up.id, None)
