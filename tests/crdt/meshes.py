"""Real mesh nodes on loopback, each with a Replicator and a SQLite store (shared helpers)."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trio

from crdt.documents import MeshDocument, workspace_document
from crdt.replication import Replicator
from crdt.schema import Organization
from crdt.store import PersistedDoc, Store
from mesh import BroadcastDelivered, Identity, MeshConfig, MeshNode

MESH = b"replication-test"
IDS = [Identity.from_seed(bytes([i + 1]) * 32) for i in range(4)]
MEMBERS = {i.public_key for i in IDS}
WAIT = 15.0


@dataclass
class Replica:
    node: MeshNode
    replicator: Replicator
    mesh_doc: PersistedDoc
    store: Store
    delivered: int = 0
    topics: list[str] = field(default_factory=list)
    """The topic of every broadcast delivered here."""

    def organizations(self) -> set[str]:
        return {o.name for o in MeshDocument(self.mesh_doc.doc).list(Organization)[0]}

    def edit_mesh(self, name: str) -> None:
        _, update = MeshDocument.edit(
            self.mesh_doc, lambda d: d.create(Organization, {"name": name})
        )
        assert update is not None
        self.node.broadcast(*Replicator.publish("mesh", update))

    def workspace(self, workspace_id: str) -> PersistedDoc:
        """The replicated document of ``workspace_id``."""
        return self.replicator.docs[workspace_document(workspace_id)]


@dataclass
class Fleet:
    nursery: trio.Nursery
    tmp: Path
    replicas: list[Replica] = field(default_factory=list)
    changed: trio.Event = field(default_factory=trio.Event)

    @staticmethod
    def store_path(tmp: Path, i: int) -> Path:
        return tmp / f"node{i}.db"

    async def start(
        self,
        i: int,
        *,
        workspaces: tuple[str, ...] = (),
        config: MeshConfig | None = None,
        audience: Callable[[bytes, str], bool] | None = None,
    ) -> Replica:
        """Node ``i`` (identity ``IDS[i]``, store ``node<i>.db``), replicating the mesh
        document and ``workspaces``; broadcasts it receives are delivered to its replicator.
        ``audience(peer, document)``: who replicates what (default: everyone)."""
        store = Store.open(self.store_path(self.tmp, i))
        replicator = Replicator(MEMBERS.__contains__, audience)
        mesh_doc = PersistedDoc.open(store, "mesh", random.Random(i))
        replicator.replicate("mesh", mesh_doc)
        for ws in workspaces:
            name = workspace_document(ws)
            replicator.replicate(name, PersistedDoc.open(store, name, random.Random(i + 10)))
        config = config or MeshConfig.local(push_pull_interval=1.0)
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
                    replicator.deliver(event.payload, event.topic)
                    replica.delivered += 1
                    replica.topics.append(event.topic)
                self.changed.set()
                self.changed = trio.Event()

        self.nursery.start_soon(pump)
        self.replicas.append(replica)
        return replica

    async def until(self, condition: Callable[[], bool], wait: float = WAIT) -> None:
        with trio.fail_after(wait):
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
