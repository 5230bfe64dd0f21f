"""A node joining a mesh whose workspace holds 10,000 virtual hosts gets all of it over real
loopback sockets (issue 4: "a new node joining a mesh that holds 10,000 virtual hosts")."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from bench import samples
from crdt.documents import WorkspaceDocument
from crdt.schema import Upstream, VirtualHost
from crdt.store import PersistedDoc, Store
from crdt.yjs import decode_state_vector, delete_set
from mesh import MeshConfig
from tests.crdt.meshes import Fleet, Replica, fleet

WS = "shop"
VHOSTS = 10_000
UPSTREAMS = 50
DISABLED = 100
BATCH = 2_500
# Anti-entropy rounds off: only the join's own push-pull exchanges carry state to the
# joiner. Joining through three seeds moves three 10,000-vhost states (about 0.4 s of CPU
# each, every side in this one process): the `local` preset's 2 s stream_timeout would
# leave too little margin on a loaded box.
CONFIG = MeshConfig.local(push_pull_interval=0.0, stream_timeout=20.0)


def _create_vhosts(d: WorkspaceDocument, writer: int, numbers: range, ups: list[str]) -> None:
    for n in numbers:
        d.create(VirtualHost, samples.vhost(f"{writer}-{n}", ups[n % len(ups)], n))


def _build(replica: Replica, writer: int, vhosts: int, upstreams: int) -> None:
    """Create ``upstreams`` and ``vhosts`` in a few big durable transactions."""
    doc = replica.workspace(WS)
    ups, _ = WorkspaceDocument.edit(
        doc,
        lambda d: [
            d.create(Upstream, samples.upstream(f"{writer}-{n}", (writer, n))).id
            for n in range(upstreams)
        ],
    )
    for start in range(0, vhosts, BATCH):
        numbers = range(start, min(start + BATCH, vhosts))
        WorkspaceDocument.edit(
            doc, functools.partial(_create_vhosts, writer=writer, numbers=numbers, ups=ups)
        )


def _disable(replica: Replica, count: int) -> None:
    """One field edit on ``count`` vhosts, in one transaction."""
    doc = replica.workspace(WS)
    hosts, _ = WorkspaceDocument(doc.doc).list(VirtualHost)

    def edit(d: WorkspaceDocument) -> None:
        for host in hosts[:count]:
            d.patch(VirtualHost, host.id, {"enabled": False})

    WorkspaceDocument.edit(doc, edit)


def _clocks(doc: PersistedDoc) -> dict[int, int]:
    return decode_state_vector(doc.doc.get_state())


def _deletions(doc: PersistedDoc) -> dict[int, list[tuple[int, int]]]:
    """Equal state vectors do not make equal documents: a deletion adds no clock."""
    return delete_set(doc.doc)


def _same(a: PersistedDoc, b: PersistedDoc) -> bool:
    """Same structs and same deletions: neither replica lacks anything of the other's."""
    return _clocks(a) == _clocks(b) and _deletions(a) == _deletions(b)


async def _existing_mesh(f: Fleet) -> tuple[Replica, Replica, Replica]:
    """Three nodes holding 10,000 vhosts written by two of them, edited by the third."""
    a = await f.start(0, workspaces=(WS,), config=CONFIG)
    b = await f.start(1, workspaces=(WS,), config=CONFIG)
    half = VHOSTS // 2
    _build(a, 0, half, UPSTREAMS // 2)
    _build(b, 1, VHOSTS - half, UPSTREAMS - UPSTREAMS // 2)
    await b.node.join([a.node.addr])  # each gets the other's half
    await f.until(lambda: _same(a.workspace(WS), b.workspace(WS)))
    c = await f.start(2, workspaces=(WS,), config=CONFIG)
    await c.node.join([a.node.addr])
    await f.until(lambda: _same(c.workspace(WS), a.workspace(WS)))
    _disable(c, DISABLED)  # edits only c holds: a and b lack them
    return a, b, c


@pytest.mark.slow
async def test_a_new_node_gets_10000_vhosts_by_its_join_exchange(tmp_path: Path) -> None:
    async with fleet(tmp_path) as f:
        a, b, c = await _existing_mesh(f)
        assert not _same(a.workspace(WS), c.workspace(WS))
        new = await f.start(3, workspaces=(WS,), config=CONFIG)
        assert len(WorkspaceDocument(new.workspace(WS).doc).list(VirtualHost)[0]) == 0

        # The join's push-pull with every seed has run (and merged) when join() returns.
        assert await new.node.join([a.node.addr, b.node.addr, c.node.addr]) == 3
        joined = new.workspace(WS)
        source = c.workspace(WS)  # the only seed holding every edit
        assert _same(joined, source)
        assert _deletions(source), "the disabling edits deleted the values they replaced"
        assert new.delivered == 0, "no broadcast was sent: the join exchange carried it all"
        assert new.replicator.applied >= 1
        assert new.replicator.drops == {}

        expected_json = WorkspaceDocument(source.doc).to_json()
        assert WorkspaceDocument(joined.doc).to_json() == expected_json
        got, want = WorkspaceDocument(joined.doc).read(), WorkspaceDocument(source.doc).read()
        assert got.invalid == []
        assert want.invalid == []
        assert got.state == want.state
        assert len(got.state.virtual_hosts) == VHOSTS
        assert len(got.state.upstreams) == UPSTREAMS
        disabled = [h for h in got.state.virtual_hosts.values() if not h.enabled]
        assert len(disabled) == DISABLED
        # Every vhost proxies to an upstream the joiner holds too.
        assert {h.locations[0].upstream for h in got.state.virtual_hosts.values()} == set(
            got.state.upstreams
        )
        expected_clocks = _clocks(source)
        expected_deletions = _deletions(source)

    # What arrived was persisted: the joiner's store alone gives the same document back.
    with Store.open(Fleet.store_path(tmp_path, 3)) as store:
        reopened = PersistedDoc.open(store, joined.name)
        assert reopened.loaded_intact, reopened.problems
        assert _clocks(reopened) == expected_clocks
        assert _deletions(reopened) == expected_deletions
        assert WorkspaceDocument(reopened.doc).to_json() == expected_json
