"""Documents replicated between real mesh nodes on loopback sockets."""

from __future__ import annotations

import random
import zlib
from pathlib import Path

import msgpack

from crdt.documents import MeshDocument, WorkspaceDocument, workspace_document
from crdt.replication import Replicator
from crdt.schema import Organization, Upstream
from crdt.store import PersistedDoc, Store
from tests.crdt.meshes import MEMBERS, fleet


async def test_an_edit_reaches_every_replica_and_is_durable_there(tmp_path: Path) -> None:
    async with fleet(tmp_path) as f:
        a, b, c = [await f.start(i) for i in range(3)]
        await b.node.join([a.node.addr])
        await c.node.join([a.node.addr])
        c.edit_mesh("Acme")
        await f.until(lambda: all(r.organizations() == {"Acme"} for r in (a, b, c)))
        assert a.delivered
        assert b.delivered
    # What arrived by broadcast was persisted: a reopened store has it.
    with Store.open(tmp_path / "node0.db") as store:
        reopened = PersistedDoc.open(store, "mesh")
        assert {o.name for o in MeshDocument(reopened.doc).list(Organization)[0]} == {"Acme"}


async def test_a_node_that_joins_late_gets_earlier_edits_by_anti_entropy(tmp_path: Path) -> None:
    async with fleet(tmp_path) as f:
        a = await f.start(0)
        b = await f.start(1)
        await b.node.join([a.node.addr])
        for name in ("One", "Two", "Three"):
            a.edit_mesh(name)
        await f.until(lambda: b.organizations() == {"One", "Two", "Three"})
        late = await f.start(2)
        await late.node.join([b.node.addr])
        # No broadcast carries these to the late node: only the join's state exchange.
        await f.until(lambda: late.organizations() == {"One", "Two", "Three"})
        assert late.delivered == 0


async def test_a_workspace_document_goes_only_to_nodes_that_replicate_it(tmp_path: Path) -> None:
    async with fleet(tmp_path) as f:
        a = await f.start(0, workspaces=("shop",))
        b = await f.start(1, workspaces=("shop",))
        outsider = await f.start(2)
        await b.node.join([a.node.addr])
        await outsider.node.join([a.node.addr])
        shop = workspace_document("shop")
        _, update = WorkspaceDocument.edit(
            a.replicator.docs[shop],
            lambda d: d.create(Upstream, {"name": "app", "servers": [{"address": "10.0.0.1:80"}]}),
        )
        assert update is not None
        # Anti-entropy only (no broadcast): b must get it, the outsider never.
        await f.until(
            lambda: len(WorkspaceDocument(b.replicator.docs[shop].doc).list(Upstream)[0]) == 1
        )
        await f.until(lambda: outsider.node.stats.push_pulls_in + outsider.node.stats.joins >= 3)
        assert shop not in outsider.replicator.docs
        assert shop not in outsider.store.documents()


def test_hostile_payloads_are_dropped_and_counted(tmp_path: Path) -> None:
    with Store.open(tmp_path / "x.db") as store:
        r = Replicator(MEMBERS.__contains__)
        r.replicate("mesh", PersistedDoc.open(store, "mesh"))
        r.deliver(b"\xff\x00garbage")
        r.deliver(msgpack.packb([1, b"not a yjs update"]))
        r.deliver(msgpack.packb([1, b"\x00\x00"]), "other")
        assert r.merge_reply(b"p" * 32, b"\x01\x02", False) == b""
        bomb = msgpack.packb({"diff": {"mesh": b"x\x9c" + b"\x00" * 10}})
        r.merge_final(b"p" * 32, bomb)
        assert r.drops["malformed"] >= 2
        assert r.drops["not_replicated"] == 1
        assert r.drops["bad_update"] == 1
        assert r.applied == 0


def test_a_large_update_travels_compressed_and_a_small_one_as_is(tmp_path: Path) -> None:
    with Store.open(tmp_path / "src.db") as src_store, Store.open(tmp_path / "dst.db") as dst:
        src = PersistedDoc.open(src_store, "mesh", random.Random(2))
        description = "an organization with a long description " * 20
        _, large = MeshDocument.edit(
            src, lambda d: d.create(Organization, {"name": "P", "description": description})
        )
        org = MeshDocument(src.doc).list(Organization)[0][0].id
        _, small = MeshDocument.edit(src, lambda d: d.patch(Organization, org, {"name": "O"}))
        assert small is not None
        assert large is not None
        sent = [Replicator.publish("mesh", u) for u in (large, small)]
        fields = [msgpack.unpackb(out.payload) for out in sent]
        assert fields[0][2] == 1
        assert zlib.decompress(fields[0][1]) == large
        assert len(sent[0].payload) < len(large) / 2
        assert len(small) <= 128
        assert fields[1] == [1, small]  # not worth compressing
        r = Replicator(MEMBERS.__contains__)
        r.replicate("mesh", PersistedDoc.open(dst, "mesh"))
        for out in sent:
            r.deliver(out.payload, out.topic)
        names = {o.name for o in MeshDocument(r.docs["mesh"].doc).list(Organization)[0]}
        assert names == {"O"}
        assert r.applied == 2
        # A corrupt stream or an encoding this version does not know: dropped, counted.
        r.deliver(msgpack.packb([1, b"x\x9cnot deflate", 1]))
        r.deliver(msgpack.packb([1, zlib.compress(large), 2]))
        assert r.drops["malformed"] == 2
        assert r.applied == 2


def test_an_update_before_its_dependency_is_held_then_integrated(tmp_path: Path) -> None:
    with Store.open(tmp_path / "src.db") as src_store, Store.open(tmp_path / "dst.db") as dst:
        src = PersistedDoc.open(src_store, "mesh", random.Random(1))
        _, first = MeshDocument.edit(src, lambda d: d.create(Organization, {"name": "First"}))
        org = MeshDocument(src.doc).list(Organization)[0][0]
        _, second = MeshDocument.edit(
            src, lambda d: d.patch(Organization, org.id, {"name": "Second"})
        )
        assert first is not None
        assert second is not None
        r = Replicator(MEMBERS.__contains__)
        target = PersistedDoc.open(dst, "mesh", random.Random(2))
        r.replicate("mesh", target)
        r.deliver(*Replicator.publish("mesh", second))
        assert MeshDocument(target.doc).list(Organization) == ([], [])
        r.deliver(*Replicator.publish("mesh", first))
        names = [o.name for o in MeshDocument(target.doc).list(Organization)[0]]
        assert names == ["Second"]
        assert r.drops == {}


def test_a_peer_update_the_full_disk_refuses_is_dropped_not_raised(tmp_path: Path) -> None:
    # Found by the fault lab (bench.faults): a node whose disk filled up died with
    # StoreFull on the next update a peer broadcast; it must keep running, hold nothing
    # it could not persist, and take the update again once the disk accepts writes.
    with Store.open(tmp_path / "src.db") as src_store, Store.open(tmp_path / "dst.db") as dst:
        src = PersistedDoc.open(src_store, "mesh", random.Random(1))

        def many(d: MeshDocument) -> None:  # ~300 KB: more than a full store has left
            for i in range(300):
                d.create(Organization, {"name": f"org{i}", "description": "x" * 1000})

        _, update = MeshDocument.edit(src, many)
        assert update is not None
        r = Replicator(MEMBERS.__contains__)
        target = PersistedDoc.open(dst, "mesh", random.Random(2))
        r.replicate("mesh", target)
        pages = dst._conn.execute("PRAGMA page_count").fetchone()[0]
        dst._conn.execute(f"PRAGMA max_page_count={pages}")
        r.deliver(*Replicator.publish("mesh", update))  # broadcast path
        r.merge_final(b"p" * 32, msgpack.packb({"diff": {"mesh": zlib.compress(update)}}))
        assert r.drops == {"not_persisted": 2}
        assert r.applied == 0
        assert MeshDocument(target.doc).list(Organization) == ([], [])
        dst._conn.execute("PRAGMA max_page_count=1073741823")
        r.deliver(*Replicator.publish("mesh", update))
        assert len(MeshDocument(target.doc).list(Organization)[0]) == 300
    with Store.open(tmp_path / "dst.db") as dst:
        reopened = PersistedDoc.open(dst, "mesh")
        assert len(MeshDocument(reopened.doc).list(Organization)[0]) == 300
