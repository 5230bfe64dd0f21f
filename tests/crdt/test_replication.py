"""Documents replicated between real mesh nodes on loopback sockets."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import msgpack
import trio

from crdt.documents import MeshDocument, WorkspaceDocument, workspace_document
from crdt.replication import Replicator
from crdt.schema import Organization, Upstream
from crdt.store import PersistedDoc, Store
from mesh import BroadcastDelivered, Identity, MeshConfig, MeshNode

MESH = b"replication-test"
IDS = [Identity.from_seed(bytes([i + 1]) * 32) for i in range(3)]
MEMBERS = {i.public_key for i in IDS}
WAIT = 15.0


@dataclass
class Replica:
    node: MeshNode
    replicator: Replicator
    mesh_doc: PersistedDoc
    store: Store
    delivered: int = 0

    def organizations(self) -> set[str]:
        return {o.name for o in MeshDocument(self.mesh_doc.doc).list(Organization)[0]}

    def edit_mesh(self, name: str) -> None:
        _, update = MeshDocument.edit(
            self.mesh_doc, lambda d: d.create(Organization, {"name": name})
        )
        assert update is not None
        self.node.broadcast(Replicator.publish("mesh", update))


@dataclass
class Fleet:
    nursery: trio.Nursery
    tmp: Path
    replicas: list[Replica] = field(default_factory=list)
    changed: trio.Event = field(default_factory=trio.Event)

    async def start(self, i: int, *, workspaces: tuple[str, ...] = ()) -> Replica:
        store = Store.open(self.tmp / f"node{i}.db")
        replicator = Replicator(MEMBERS.__contains__)
        mesh_doc = PersistedDoc.open(store, "mesh", random.Random(i))
        replicator.replicate("mesh", mesh_doc)
        for ws in workspaces:
            name = workspace_document(ws)
            replicator.replicate(name, PersistedDoc.open(store, name, random.Random(i + 10)))
        config = MeshConfig.local(push_pull_interval=1.0)
        node = MeshNode(
            identity=IDS[i], mesh_id=MESH, bind=("127.0.0.1", 0), config=config,
            delegate=replicator, boot_epoch=time.time_ns(),
        )  # fmt: skip
        await self.nursery.start(node.run)
        replica = Replica(node, replicator, mesh_doc, store)
        events = node.subscribe()

        async def pump() -> None:
            async for event in events:
                if isinstance(event, BroadcastDelivered):
                    replicator.deliver(event.payload)
                    replica.delivered += 1
                self.changed.set()
                self.changed = trio.Event()

        self.nursery.start_soon(pump)
        self.replicas.append(replica)
        return replica

    async def until(self, condition: Callable[[], bool]) -> None:
        with trio.fail_after(WAIT):
            while not condition():
                # Anti-entropy changes documents without an event: poll briefly too.
                with trio.move_on_after(0.05):
                    await self.changed.wait()


@asynccontextmanager
async def fleet(tmp: Path) -> AsyncIterator[Fleet]:
    async with trio.open_nursery() as nursery:
        f = Fleet(nursery, tmp)
        yield f
        nursery.cancel_scope.cancel()
    for r in f.replicas:
        r.store.close()


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
        r.deliver(msgpack.packb([1, "mesh", b"not a yjs update"]))
        r.deliver(msgpack.packb([1, "workspace:other", b"\x00\x00"]))
        assert r.merge_reply(b"p" * 32, b"\x01\x02", False) == b""
        bomb = msgpack.packb({"diff": {"mesh": b"x\x9c" + b"\x00" * 10}})
        r.merge_final(b"p" * 32, bomb)
        assert r.drops["malformed"] >= 2
        assert r.drops["not_replicated"] == 1
        assert r.drops["bad_update"] == 1
        assert r.applied == 0


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
        r.deliver(Replicator.publish("mesh", second))
        assert MeshDocument(target.doc).list(Organization) == ([], [])
        r.deliver(Replicator.publish("mesh", first))
        names = [o.name for o in MeshDocument(target.doc).list(Organization)[0]]
        assert names == ["Second"]
        assert r.drops == {}
