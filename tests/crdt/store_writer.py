"""Child process for the kill -9 test: writes edits through PersistedDoc forever (bounded).

Usage: python tests/crdt/store_writer.py DB_PATH PREFIX MAX_EDITS

Prints ``ack <key>`` on stdout (flushed) after each ``commit()`` returned, i.e. after the
update is fsynced. The parent SIGKILLs it at a random point and checks every acked key.
"""

from __future__ import annotations

import sys
from typing import Any

from pycrdt import Doc, Map

from crdt.store import PersistedDoc, Store


def main() -> None:
    path, prefix, max_edits = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = Store.open(path)
    pdoc = PersistedDoc.open(store, "ws")
    print(f"ready {pdoc.client_id}", flush=True)
    for i in range(max_edits):
        key = f"{prefix}-{i}"

        def edit(doc: Doc[Any], key: str = key, i: int = i) -> None:
            doc.get("kv", type=Map)[key] = i

        pdoc.commit(edit)
        print(f"ack {key}", flush=True)
        if i % 97 == 96:
            pdoc.compact_if_needed(max_updates=50)
    print("done", flush=True)


if __name__ == "__main__":
    main()
