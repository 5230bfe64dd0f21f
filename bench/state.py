"""The state plane at scale: ``uv run python -m bench.state --vhosts 10000``.

One workspace document holding ``--vhosts`` realistic virtual hosts (two server names, TLS
by ACME, a location proxying to one of ``vhosts / 100`` upstreams with request headers,
response headers, body size and timeout; every tenth host also serves a static
location), created through :class:`crdt.documents.WorkspaceDocument` in transactions of
2,500 and persisted through the durable store. Then, on real loopback sockets (MeshNode,
``lan`` preset, periodic anti-entropy off so that only the exchanges measured run):

- ``full_bytes``: ``get_update()`` of the whole document; ``full_bytes_compressed``: the
  same through zlib level 6, as the Replicator compresses anti-entropy diffs.
- ``store_edits_per_s``: ``--edits`` one-field edits (``patch`` of one vhost's
  description), each its own commit - SQLite ``synchronous=FULL``, one fsync per edit,
  compaction as a node runs it - on the 10,000-vhost document.
- ``antientropy_idle_bytes``: one push-pull exchange between two in-sync nodes that
  replicate this one document, counted on the wire by a loopback TCP relay between them
  (handshake, frames, member table and the Replicator's legs, both directions), after the
  edits above (a document with an edit history); ``antientropy_idle_bytes_no_history``:
  the same right after the build, before any value was overwritten.
- ``join_s``: a fresh node (empty store) calls ``join([seed])``; the time from the call
  until its document holds everything the seed's does (median of ``--join-runs``);
  ``join_all_seeds_s``: the same through every existing node at once.
- ``edit_wire_bytes``: the sealed datagram (UDP payload) the origin sends for one
  broadcast one-field edit, from the driver's own counters (``bytes_out`` /
  ``packets_out`` over the eager push); ``edit_user_messages_per_datagram`` says how many
  copies of the broadcast it carried. ``api_edit_*``: the same edit as the API makes it,
  with the author stamp on the entity and an entry in the document's audit log.
- ``rss_mb``: VmRSS of a child process that imports what a node imports and loads the
  document from the store (``rss_models_mb``: after also reading every validated model).

JSON keys (last line): ``vhosts, full_bytes, full_bytes_compressed, join_s,
edit_wire_bytes, antientropy_idle_bytes, store_edits_per_s, rss_mb``, then details:
``build_s, join_runs_s, join_all_seeds_s, join_wire_bytes, edit_update_bytes,
edit_payload_bytes, edit_datagrams, edit_user_messages_per_datagram,
antientropy_idle_bytes_no_history, antientropy_idle_app_bytes, delete_set_bytes,
store_ack_p50_ms, store_ack_p99_ms, edits, load_s, rss_models_mb, rss_peak_mb,
rss_baseline_mb, api_edit_wire_bytes, api_edit_update_bytes, api_edit_payload_bytes``.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from bench import samples
from bench.report import emit, percentile, progress
from crdt.documents import WorkspaceDocument, workspace_document
from crdt.replication import Replicator
from crdt.schema import Upstream, VirtualHost
from crdt.schema.stamp import Stamp
from crdt.store import PersistedDoc, Store
from crdt.yjs import decode_state_vector, delete_set
from mesh import Address, BroadcastDelivered, Identity, MeshConfig, MeshNode

DOC = workspace_document("2kq7w3xrmhv5ntgdp6ebzsa4yc")  # a workspace id as new_id() makes
BATCH = 2_500
MESH_ID = b"bench-state"
IDS = [Identity.from_seed(bytes([i + 1]) * 32) for i in range(16)]
MEMBERS = frozenset(i.public_key for i in IDS)
CONFIG = MeshConfig.lan(push_pull_interval=0.0)
WAIT = 60.0


# ---------------------------------------------------------------------- the document


def _create_vhosts(d: WorkspaceDocument, numbers: range, ups: list[str]) -> None:
    for n in numbers:
        d.create(VirtualHost, samples.vhost(str(n), ups[n % len(ups)], n))


def build(doc: PersistedDoc, vhosts: int) -> None:
    """Create the upstreams and ``vhosts`` virtual hosts in a few durable transactions."""
    count = max(1, vhosts // 100)
    ups, _ = WorkspaceDocument.edit(
        doc,
        lambda d: [
            d.create(Upstream, samples.upstream(str(n), (n % 250, n // 250 + 1))).id
            for n in range(count)
        ],
    )
    for start in range(0, vhosts, BATCH):
        numbers = range(start, min(start + BATCH, vhosts))
        WorkspaceDocument.edit(doc, functools.partial(_create_vhosts, numbers=numbers, ups=ups))


def vhost_ids(doc: PersistedDoc) -> list[str]:
    return sorted(WorkspaceDocument(doc.doc).to_json()[VirtualHost.COLLECTION])


def edit_one_field(doc: PersistedDoc, ident: str, text: str, stamp: Stamp | None = None) -> bytes:
    """One committed (fsynced) one-field edit; returns its update. With a ``stamp`` it is
    an edit as the API makes it: author stamp on the entity and an audit entry."""
    _, update = WorkspaceDocument.edit(
        doc, lambda d: d.patch(VirtualHost, ident, {"description": text}, stamp)
    )
    assert update is not None
    return update


def deletions(doc: PersistedDoc) -> bytes:
    """The document's delete set as an update (no structs): what ``get_update`` adds to
    every diff, since a deletion adds no clock to the state vector."""
    return doc.doc.get_update(doc.doc.get_state())


def same_deletions(a: PersistedDoc, b: PersistedDoc) -> bool:
    return delete_set(a.doc) == delete_set(b.doc)


def in_sync(a: PersistedDoc, b: PersistedDoc) -> bool:
    """Same clocks (cheap); the delete sets are compared once the timer has stopped."""
    return decode_state_vector(a.doc.get_state()) == decode_state_vector(b.doc.get_state())


# ---------------------------------------------------------------------- nodes


@dataclass
class Node:
    node: MeshNode
    replicator: Replicator
    doc: PersistedDoc
    store: Store
    delivered: list[trio.Event] = field(default_factory=lambda: [trio.Event()])


async def start_node(nursery: trio.Nursery, i: int, path: Path) -> Node:
    """Node ``i`` replicating :data:`DOC` from the store at ``path``; broadcasts it
    receives are applied, each setting ``delivered[-1]``."""
    store = Store.open(path)
    doc = PersistedDoc.open(store, DOC)
    replicator = Replicator(MEMBERS.__contains__)
    replicator.replicate(DOC, doc)
    node = MeshNode(
        identity=IDS[i], mesh_id=MESH_ID, bind=("127.0.0.1", 0), config=CONFIG,
        delegate=replicator, boot_epoch=time.time_ns(),
    )  # fmt: skip
    await nursery.start(node.run)
    out = Node(node, replicator, doc, store)
    events = node.subscribe()

    async def pump() -> None:
        async for event in events:
            if isinstance(event, BroadcastDelivered):
                replicator.deliver(event.payload, event.topic)
                out.delivered[-1].set()

    nursery.start_soon(pump)
    return out


async def until(condition: Callable[[], bool], wait: float = WAIT) -> None:
    """Poll ``condition`` (bounded: fails after ``wait`` seconds)."""
    with trio.fail_after(wait):
        # Anti-entropy and the store change documents without an event to await.
        while not condition():  # noqa: ASYNC110
            await trio.sleep(0.001)


async def timed_join(nursery: trio.Nursery, i: int, tmp: Path, seeds: list[Node]) -> float:
    """A fresh node joins through ``seeds``: seconds until it holds what they hold."""
    fresh = await start_node(nursery, i, tmp / f"join{i}.db")
    source = seeds[0].doc
    t0 = time.perf_counter()
    await fresh.node.join([s.node.addr for s in seeds])
    await until(lambda: in_sync(fresh.doc, source))
    elapsed = time.perf_counter() - t0
    if delete_set(fresh.doc.doc) != delete_set(source.doc):
        raise AssertionError("the joined document differs from the seed's (delete set)")
    return elapsed


async def relayed_exchange(initiator: MeshNode, target: Address) -> int:
    """Bytes (TCP payload, both directions) of one push-pull exchange that ``initiator``
    opens with ``target``, counted by a loopback relay between them. The exchange is a
    join (the only one a caller can start); its legs are those of a periodic push-pull."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    listener = listeners[0]
    port = listener.socket.getsockname()[1]
    counted = [0]

    async def pump(src: trio.SocketStream, dst: trio.SocketStream) -> None:
        try:
            while data := await src.receive_some(65536):
                counted[0] += len(data)
                await dst.send_all(data)
            await dst.send_eof()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def relay() -> None:
        client = await listener.accept()
        server = await trio.open_tcp_stream(*target)
        async with client, server, trio.open_nursery() as pumps:
            pumps.start_soon(pump, client, server)
            pumps.start_soon(pump, server, client)

    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(relay)
            await initiator.join([("127.0.0.1", port)])
    await listener.aclose()
    return counted[0]


def idle_app_bytes(a: Node, b: Node) -> int:
    """The Replicator's share of an in-sync exchange: its three legs' payloads."""
    first = b.replicator.local_state(a.node.key, False)
    second = a.replicator.merge_remote_state(b.node.key, first, False)
    third = b.replicator.merge_reply(a.node.key, second, False)
    return len(first) + len(second) + len(third)


# ---------------------------------------------------------------------- measurements


def store_edits(doc: PersistedDoc, edits: int) -> tuple[float, list[float]]:
    """``edits`` one-field edits, one fsynced commit each: (edits per second, ack times)."""
    ids = vhost_ids(doc)
    rng = random.Random(7)
    acks: list[float] = []
    start = time.perf_counter()
    for i in range(edits):
        t0 = time.perf_counter()
        edit_one_field(doc, rng.choice(ids), f"edited {i}")
        acks.append(time.perf_counter() - t0)
        if i % 100 == 99:
            doc.compact_if_needed()
    return edits / (time.perf_counter() - start), acks


async def edit_on_the_wire(
    origin: Node, receiver: Node, stamp: Stamp | None = None
) -> dict[str, Any]:
    """One broadcast one-field edit: what the origin's driver counted going out."""
    core = origin.node.core
    # Let earlier gossip (join announcements) drain, so the datagram carries only the edit.
    await until(lambda: len(core.queue) == 0)
    ident = vhost_ids(origin.doc)[0]
    text = "one field changed" + (" by the API" if stamp else "")
    update = edit_one_field(origin.doc, ident, text, stamp)
    outgoing = Replicator.publish(DOC, update)
    stats = origin.node.stats
    before = (stats.bytes_out, stats.packets_out, stats.messages_out["user"])
    receiver.delivered.append(trio.Event())
    origin.node.broadcast(*outgoing)
    sent = stats.bytes_out - before[0]
    packets = stats.packets_out - before[1]
    users = stats.messages_out["user"] - before[2]
    with trio.fail_after(WAIT):
        await receiver.delivered[-1].wait()
    if not in_sync(origin.doc, receiver.doc):
        raise AssertionError("the broadcast edit did not reach the receiver")
    return {
        "edit_wire_bytes": round(sent / packets),
        "edit_update_bytes": len(update),
        "edit_payload_bytes": len(outgoing.payload),
        "edit_datagrams": packets,
        "edit_user_messages_per_datagram": round(users / packets, 2),
    }


def _status(field_name: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def rss_child(path: Path) -> None:
    """In a child process: load the document as a restarting node does; print memory."""
    baseline = _status("VmRSS")
    store = Store.open(path)
    t0 = time.perf_counter()
    doc = PersistedDoc.open(store, DOC)
    load_s = time.perf_counter() - t0
    gc.collect()
    rss = _status("VmRSS")
    read = WorkspaceDocument(doc.doc).read()
    gc.collect()
    result = {
        "vhosts": len(read.state.virtual_hosts),
        "load_s": round(load_s, 3),
        "rss_mb": round(rss, 1),
        "rss_models_mb": round(_status("VmRSS"), 1),
        "rss_peak_mb": round(_status("VmHWM"), 1),
        "rss_baseline_mb": round(baseline, 1),
    }
    print(json.dumps(result), flush=True)


def measure_rss(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.state", "--rss-child", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# ---------------------------------------------------------------------- the run


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"vhosts": args.vhosts}
    seed_path = tmp / "seed0.db"
    with Store.open(seed_path) as store:
        doc = PersistedDoc.open(store, DOC)
        t0 = time.perf_counter()
        build(doc, args.vhosts)
        result["build_s"] = round(time.perf_counter() - t0, 2)
        full = doc.doc.get_update()
        result["full_bytes"] = len(full)
        result["full_bytes_compressed"] = len(zlib.compress(full, 6))
        del full
    progress(f"built {args.vhosts} vhosts in {result['build_s']} s")

    async with trio.open_nursery() as nursery:
        a = await start_node(nursery, 0, seed_path)
        b = await start_node(nursery, 1, tmp / "seed1.db")
        await b.node.join([a.node.addr])
        await until(lambda: in_sync(a.doc, b.doc))
        result["antientropy_idle_bytes_no_history"] = await relayed_exchange(b.node, a.node.addr)

        # Blocks the event loop meanwhile: nothing else runs, nothing else is measured.
        rate, acks = store_edits(a.doc, args.edits)
        result["store_edits_per_s"] = round(rate, 1)
        result["store_ack_p50_ms"] = round(statistics.median(acks) * 1000, 3)
        result["store_ack_p99_ms"] = round(percentile(acks, 99) * 1000, 3)
        result["edits"] = args.edits
        progress(f"{args.edits} fsynced one-field edits: {rate:.0f}/s")

        await b.node.join([a.node.addr])  # b takes the edits
        await until(lambda: in_sync(a.doc, b.doc) and same_deletions(a.doc, b.doc))
        result["antientropy_idle_bytes"] = await relayed_exchange(b.node, a.node.addr)
        result["antientropy_idle_app_bytes"] = idle_app_bytes(a, b)
        result["delete_set_bytes"] = len(deletions(a.doc))
        progress(f"idle exchange: {result['antientropy_idle_bytes']} B")

        i = 2
        runs = []
        for _ in range(args.join_runs):
            runs.append(await timed_join(nursery, i, tmp, [a]))
            i += 1
        result["join_s"] = round(statistics.median(runs), 3)
        result["join_runs_s"] = [round(r, 3) for r in runs]
        result["join_all_seeds_s"] = round(await timed_join(nursery, i, tmp, [a, b]), 3)
        i += 1
        fresh = await start_node(nursery, i, tmp / f"join{i}.db")
        result["join_wire_bytes"] = await relayed_exchange(fresh.node, a.node.addr)
        progress(
            f"join: {result['join_runs_s']} s; through every seed {result['join_all_seeds_s']} s"
        )

        result.update(await edit_on_the_wire(a, b))
        stamp = Stamp.now("node-0001", "alice", "operator")
        api = await edit_on_the_wire(a, b, stamp)
        result.update({f"api_{k}": v for k, v in api.items() if k.endswith("_bytes")})
        nursery.cancel_scope.cancel()

    result.update(measure_rss(seed_path))
    return result


KEYS = (
    "vhosts",
    "full_bytes",
    "full_bytes_compressed",
    "join_s",
    "edit_wire_bytes",
    "antientropy_idle_bytes",
    "store_edits_per_s",
    "rss_mb",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vhosts", type=int, default=10_000)
    parser.add_argument("--edits", type=int, default=1_000, help="fsynced one-field edits")
    parser.add_argument("--join-runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where to put the databases")
    parser.add_argument("--rss-child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child is not None:
        rss_child(args.rss_child)
        return
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        result = trio.run(run, args, Path(tmp))
    emit({**{k: result.pop(k) for k in KEYS}, **result})


if __name__ == "__main__":
    main()
