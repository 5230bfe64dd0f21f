"""Property: random edits on 3-5 replicas, replicated *through the mesh* (Replicators as
the mesh delegates on the seeded simulator, with reordering, duplicated and lost
datagrams, then anti-entropy alone after the network heals) end in identical documents
and identical validated models - also for replicas that missed broadcasts entirely."""

from __future__ import annotations

import contextlib
import json
import random
from functools import partial
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crdt.documents import NotFound, WorkspaceDocument, workspace_document
from crdt.replication import Replicator
from crdt.schema import Upstream, VirtualHost
from crdt.store import PersistedDoc, Store
from mesh import BroadcastDelivered, MeshConfig
from mesh.sim import NetworkModel, Simulation
from tests.crdt.strategies import upstream_dict

DOC = workspace_document("prop")
_IDS = ["v0", "v1", "v2", "v3"]
_EDIT = st.one_of(
    st.tuples(st.just("put"), st.sampled_from(_IDS), st.sampled_from(["a", "b", "c"])),
    st.tuples(st.just("rename"), st.sampled_from(_IDS), st.sampled_from(["x", "y"])),
    st.tuples(st.just("names"), st.sampled_from(_IDS), st.sampled_from(["p.ex", "q.ex"])),
    st.tuples(st.just("delete"), st.sampled_from(_IDS), st.just("")),
    st.tuples(st.just("keepalive"), st.just("app"), st.integers(0, 64)),
)


def _vhost(ident: str, name: str) -> VirtualHost:
    return VirtualHost.model_validate(
        {
            "id": ident,
            "name": name,
            "server_names": [f"{ident}.example.com"],
            "locations": [{"path": "/", "action": "proxy", "upstream": "app"}],
        }
    )


def _apply(ws: WorkspaceDocument, *, kind: str, ident: str, value: Any) -> None:
    with contextlib.suppress(NotFound):
        if kind == "put":
            ws.put(_vhost(ident, value))
        elif kind == "rename":
            ws.patch(VirtualHost, ident, {"name": value})
        elif kind == "names":
            ws.patch(VirtualHost, ident, {"server_names": [value, f"{ident}.example.com"]})
        elif kind == "delete":
            ws.delete(VirtualHost, ident)
        else:
            ws.patch(Upstream, "app", {"keepalive": value})


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(3, 5),
    seed=st.integers(0, 2**32),
    loss=st.sampled_from([0.0, 0.2, 0.5]),
    duplicate=st.sampled_from([0.0, 0.3]),
    edits=st.lists(st.tuples(st.integers(0, 4), st.floats(0, 3), _EDIT), max_size=30),
)
def test_replicas_converge_through_the_mesh(
    n: int, seed: int, loss: float, duplicate: float, edits: list[tuple[int, float, Any]]
) -> None:
    config = MeshConfig.local(push_pull_interval=2.0)
    sim = Simulation(
        n, seed=seed, config=config, network=NetworkModel(loss=loss, duplicate=duplicate)
    )
    with TemporaryDirectory() as tmp:
        stores = [Store.open(Path(tmp) / f"n{i}.db") for i in range(n)]
        docs = [PersistedDoc.open(stores[i], DOC, random.Random(seed + i)) for i in range(n)]
        replicators = []
        for i, node in enumerate(sim.nodes):
            replicator = Replicator(sim.members.is_member)
            replicator.replicate(DOC, docs[i])
            node.core.delegate = replicator
            replicators.append(replicator)

        def deliver(i: int, event: object, _t: float) -> None:
            if isinstance(event, BroadcastDelivered):
                replicators[i].deliver(event.payload, event.topic)

        sim.hooks.append(deliver)
        _, first = WorkspaceDocument.edit(
            docs[0], lambda ws: ws.put(Upstream.model_validate(upstream_dict()))
        )
        assert first is not None
        sim.nodes[0].core.broadcast(sim.now, *Replicator.publish(DOC, first))
        sim.flush(0)
        for who, delay, (kind, ident, value) in sorted(edits, key=lambda e: e[1]):
            sim.run_until(sim.now + delay)
            i = who % n
            _, update = WorkspaceDocument.edit(
                docs[i], partial(_apply, kind=kind, ident=ident, value=value)
            )
            if update is not None:
                sim.nodes[i].core.broadcast(sim.now, *Replicator.publish(DOC, update))
                sim.flush(i)
        # Heal the network: anti-entropy alone must repair every loss.
        sim.network.loss = 0.0
        sim.network.duplicate = 0.0
        deadline = sim.now + 60.0
        while sim.now < deadline and not _same(docs):
            sim.run_until(sim.now + 1.0)
        reads = [WorkspaceDocument(d.doc) for d in docs]
        for other in reads[1:]:
            assert other.to_json() == reads[0].to_json()
            assert other.read() == reads[0].read()
        assert reads[0].read().invalid == []
        assert all(r.drops == {} for r in replicators)
        for store in stores:
            store.close()


def _same(docs: list[PersistedDoc]) -> bool:
    """Identical content (a deletion does not move the state vector: compare both)."""
    views = {
        (d.doc.get_state(), json.dumps(WorkspaceDocument(d.doc).to_json(), sort_keys=True))
        for d in docs
    }
    return len(views) == 1
