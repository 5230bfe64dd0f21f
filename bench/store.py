"""Edits per second through the durable store: ``uv run python -m bench.store [--edits N]``.

Each edit is one pycrdt transaction through :class:`crdt.store.PersistedDoc` - the update is
appended in its own SQLite transaction with ``synchronous=FULL`` (one fsync per edit), the
path every acknowledged API edit takes. ``--batch K`` also measures ``append_many`` with K
updates per transaction (one fsync per K edits), what a replicator applying peer updates
can use.

JSON keys (last line): ``edits, edits_per_s, ack_p50_ms, ack_p99_ms, batch, batch_edits_per_s,
fsync``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from pycrdt import Doc, Map

from bench.report import emit, percentile, progress
from crdt.store import PersistedDoc, Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--edits", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--dir", type=Path, default=None, help="where to put the database")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        store = Store.open(Path(tmp) / "bench.db")
        pdoc = PersistedDoc.open(store, "ws")
        acks: list[float] = []
        start = time.perf_counter()
        for i in range(args.edits):

            def edit(doc: Doc[Any], i: int = i) -> None:
                doc.get("kv", type=Map)[f"k{i}"] = i

            t0 = time.perf_counter()
            pdoc.commit(edit)
            acks.append(time.perf_counter() - t0)
            if i % 500 == 499:
                pdoc.compact_if_needed()
        elapsed = time.perf_counter() - start
        progress(f"{args.edits} edits in {elapsed:.2f} s")

        source: Doc[Any] = Doc()
        updates: list[bytes] = []
        source.observe(lambda e: updates.append(bytes(e.update)))
        kv = source.get("kv", type=Map)
        for i in range(args.edits):
            kv[f"r{i}"] = i
        start = time.perf_counter()
        for j in range(0, len(updates), args.batch):
            store.append_many("peer", updates[j : j + args.batch])
        batch_elapsed = time.perf_counter() - start
        store.close()
    emit(
        {
            "edits": args.edits,
            "edits_per_s": round(args.edits / elapsed, 1),
            "ack_p50_ms": round(statistics.median(acks) * 1000, 3),
            "ack_p99_ms": round(percentile(acks, 99) * 1000, 3),
            "batch": args.batch,
            "batch_edits_per_s": round(args.edits / batch_elapsed, 1),
            "fsync": True,
        }
    )


if __name__ == "__main__":
    main()
