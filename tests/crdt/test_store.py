"""crdt/store.py against real SQLite files: durability, damage detection, client ids, kill -9."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc, Map

from crdt.store import (
    MAX_CLIENT_ID,
    PersistedDoc,
    Store,
    StoreFull,
    StoreReadOnly,
    checksum,
    own_writes_lost,
)
from crdt.yjs import decode_state_vector
from tests.support.paths import REPO


def _updates(n: int, client_id: int = 7) -> tuple[Doc[Any], list[bytes]]:
    doc: Doc[Any] = Doc(client_id=client_id)
    kv = doc.get("kv", type=Map)
    out: list[bytes] = []
    doc.observe(lambda e: out.append(bytes(e.update)))
    for i in range(n):
        kv[f"k{i}"] = i
    return doc, out


def _content(doc: Doc[Any]) -> dict[str, Any]:
    return dict(json.loads(str(doc.get("kv", type=Map))))


def _rebuild(snapshot: bytes | None, updates: list[bytes]) -> Doc[Any]:
    doc: Doc[Any] = Doc()
    if snapshot is not None:
        doc.apply_update(snapshot)
    for u in updates:
        doc.apply_update(u)
    return doc


def _set(key: str, value: object) -> Any:
    def edit(doc: Doc[Any]) -> None:
        doc.get("kv", type=Map)[key] = value

    return edit


def test_settings_are_wal_and_full_sync(tmp_path: Path) -> None:
    with Store.open(tmp_path / "node.db") as store:
        conn = store._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()


def test_append_load_round_trip(tmp_path: Path) -> None:
    src, ups = _updates(20)
    with Store.open(tmp_path / "node.db") as store:
        assert store.append("ws", ups[0]) == 1
        assert store.append_many("ws", ups[1:]) == list(range(2, 21))
        assert store.append_many("ws", []) == []
    with Store.open(tmp_path / "node.db") as store:
        loaded = store.load("ws")
        assert loaded.intact
        assert loaded.problems == []
        assert loaded.updates == ups
        assert loaded.seqs == list(range(1, 21))
        assert loaded.snapshot is None
        assert loaded.client_id is None
        assert _content(_rebuild(loaded.snapshot, loaded.updates)) == _content(src)
        assert store.load("absent").intact
        assert store.documents() == ["ws"]


def test_compaction_keeps_the_document(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    with Store.open(path) as store:
        pdoc = PersistedDoc.open(store, "ws", rng=random.Random(1))
        for i in range(30):
            pdoc.commit(_set(f"k{i}", i))
        before_content, before_state = _content(pdoc.doc), pdoc.doc.get_state()
        assert store.needs_compaction("ws", max_updates=30)
        assert not store.needs_compaction("ws", max_updates=31)
        assert pdoc.compact_if_needed(max_updates=10)
        stats = store.stats("ws")
        assert stats.updates == 0
        assert stats.last_seq == 30
        pdoc.commit(_set("after", 1))
        assert store.stats("ws").last_seq == 31
    with Store.open(path) as store:
        loaded = store.load("ws")
        assert loaded.intact
        assert loaded.snapshot_seq == 30
        assert loaded.seqs == [31]
        again = PersistedDoc.open(store, "ws")
        assert again.loaded_intact
        content = _content(again.doc)
        assert content.pop("after") == 1
        assert content == before_content
        doc = _rebuild(loaded.snapshot, [])
        assert doc.get_state() == before_state


def test_compaction_refuses_nonsense_bounds(tmp_path: Path) -> None:
    _, ups = _updates(3)
    with Store.open(tmp_path / "node.db") as store:
        store.append_many("ws", ups)
        with pytest.raises(Exception, match="beyond the log's end"):
            store.compact("ws", b"x", 4)
        store.compact("ws", _rebuild(None, ups[:2]).get_update(), 2)
        with pytest.raises(Exception, match="older than the stored snapshot"):
            store.compact("ws", b"x", 1)
        assert store.load("ws").seqs == [3]


def test_client_id_reused_only_when_intact(tmp_path: Path) -> None:
    rng = random.Random(3)
    with Store.open(tmp_path / "node.db") as store:
        first = store.claim_client_id("ws", loaded_intact=True, rng=rng)
        assert 0 < first <= MAX_CLIENT_ID
        assert store.claim_client_id("ws", loaded_intact=True, rng=rng) == first
        fresh = store.claim_client_id("ws", loaded_intact=False, rng=rng)
        assert fresh != first
        assert 0 < fresh <= MAX_CLIENT_ID
        assert store.load("ws").client_id == fresh
        assert store.claim_client_id("ws", loaded_intact=True, rng=rng) == fresh


def test_persisted_doc_reopens_with_same_client_id(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    with Store.open(path) as store:
        pdoc = PersistedDoc.open(store, "ws")
        cid = pdoc.client_id
        update = pdoc.commit(_set("a", 1))
        assert update is not None
        assert pdoc.commit(lambda doc: None) is None  # no change, nothing written
        assert store.stats("ws").updates == 1
        # The returned update is what peers need.
        peer: Doc[Any] = Doc()
        peer.apply_update(update)
        assert _content(peer) == {"a": 1}
    with Store.open(path) as store:
        again = PersistedDoc.open(store, "ws")
        assert again.client_id == cid
        assert _content(again.doc) == {"a": 1}


def test_apply_remote_is_persisted(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    _, ups = _updates(5, client_id=99)
    with Store.open(path) as store:
        pdoc = PersistedDoc.open(store, "ws")
        for u in reversed(ups):  # out of order: pending structs must survive too
            pdoc.apply_remote(u)
        pdoc.apply_remote(ups[0])  # duplicate: nothing new, nothing written
        assert store.stats("ws").updates == 5
        pdoc.compact()
    with Store.open(path) as store:
        again = PersistedDoc.open(store, "ws")
        assert _content(again.doc) == {f"k{i}": i for i in range(5)}


def test_failed_edit_raises_but_keeps_memory_equal_to_disk(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    with Store.open(path) as store:
        pdoc = PersistedDoc.open(store, "ws")

        def half(doc: Doc[Any]) -> None:
            doc.get("kv", type=Map)["x"] = 1
            raise ValueError("boom")

        with pytest.raises(ValueError, match="boom"):
            pdoc.commit(half)
        assert _content(pdoc.doc) == {"x": 1}
    with Store.open(path) as store:
        assert _content(PersistedDoc.open(store, "ws").doc) == {"x": 1}


def _write_log(path: Path, n: int) -> list[bytes]:
    _, ups = _updates(n)
    with Store.open(path) as store:
        store.append_many("ws", ups[: n // 2])
        for u in ups[n // 2 :]:
            store.append("ws", u)
        store.claim_client_id("ws", True, random.Random(5))
    return ups


def test_corrupt_row_keeps_prefix_and_takes_fresh_client_id(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    ups = _write_log(path, 20)
    raw = sqlite3.connect(path)
    data = raw.execute("SELECT data FROM updates WHERE doc='ws' AND seq=12").fetchone()[0]
    flipped = bytes([data[0] ^ 0x01]) + data[1:]
    raw.execute("UPDATE updates SET data=? WHERE doc='ws' AND seq=12", (flipped,))
    raw.commit()
    raw.close()
    with Store.open(path) as store:
        old_id = store.load("ws").client_id
        loaded = store.load("ws")  # the damage mark persists until a fresh id is claimed
        assert not loaded.intact
        assert loaded.seqs == list(range(1, 12))
        assert loaded.updates == ups[:11]
        assert any("seq 12 fails its checksum" in p for p in loaded.problems)
        # The damaged tail is quarantined, not loaded again, not lost.
        q = store._conn.execute("SELECT seq FROM quarantine ORDER BY seq").fetchall()
        assert [r[0] for r in q] == list(range(12, 21))
        new_id = store.claim_client_id("ws", loaded.intact, random.Random(9))
        assert new_id != old_id
        # New appends continue after the kept prefix, and the document is intact again.
        assert store.append("ws", b"\x00\x00") == 12
        assert store.load("ws").intact


def test_persisted_doc_on_damaged_log(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    _write_log(path, 10)
    raw = sqlite3.connect(path)
    raw.execute("DELETE FROM updates WHERE doc='ws' AND seq=4")  # a gap
    raw.commit()
    raw.close()
    with Store.open(path) as store:
        old_id = store.load("ws").client_id
        pdoc = PersistedDoc.open(store, "ws")
        assert not pdoc.loaded_intact
        assert any("gap" in p for p in pdoc.problems)
        assert pdoc.client_id != old_id
        assert _content(pdoc.doc) == {"k0": 0, "k1": 1, "k2": 2}
        # A crash now and a restart: the fresh id stays (it was persisted with the repair).
        cid = pdoc.client_id
    with Store.open(path) as store:
        again = PersistedDoc.open(store, "ws")
        assert again.loaded_intact
        assert again.client_id == cid


def test_corrupt_snapshot_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    ups = _write_log(path, 6)
    with Store.open(path) as store:
        store.compact("ws", _rebuild(None, ups[:4]).get_update(), 4)
    raw = sqlite3.connect(path)
    raw.execute("UPDATE documents SET snapshot = snapshot || x'00' WHERE name='ws'")
    raw.commit()
    raw.close()
    with Store.open(path) as store:
        loaded = store.load("ws")
        assert not loaded.intact
        assert loaded.snapshot is None
        assert loaded.updates == []
        assert any("snapshot" in p for p in loaded.problems)


def test_undecodable_row_with_valid_checksum(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    _write_log(path, 5)
    with Store.open(path) as store:
        store.append("ws", b"\x01\x02garbage")  # e.g. written by a buggy version
        store.append("ws", _updates(7)[1][6])
        pdoc = PersistedDoc.open(store, "ws")
        assert not pdoc.loaded_intact
        assert any("does not decode" in p for p in pdoc.problems)
        assert _content(pdoc.doc) == {f"k{i}": i for i in range(5)}
        assert store.stats("ws").last_seq == 5


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_torn_wal_tail_loads_a_consistent_prefix(tmp_path: Path, seed: int) -> None:
    """SQLite checksums WAL frames: a torn tail drops whole transactions, never half of one.

    With synchronous=FULL only an unacknowledged transaction can be torn; what is left is an
    exact prefix of the appends, every row passing its checksum.
    """
    path = tmp_path / "node.db"
    _, ups = _updates(40)
    store = Store.open(path)
    store._conn.execute("PRAGMA wal_autocheckpoint=0")
    for u in ups:
        store.append("ws", u)
    crash = tmp_path / "crash"
    crash.mkdir()
    for suffix in ("", "-wal"):
        shutil.copy(str(path) + suffix, str(crash / "node.db") + suffix)
    store.close()
    wal = crash / "node.db-wal"
    size = wal.stat().st_size
    cut = random.Random(seed).randrange(32, size)
    with open(wal, "r+b") as f:
        f.truncate(cut)
    with Store.open(crash / "node.db") as crashed:
        loaded = crashed.load("ws")
        assert loaded.intact, loaded.problems
        assert loaded.updates == ups[: len(loaded.updates)]
        assert len(loaded.updates) < len(ups)


@pytest.mark.parametrize("seed", [1, 2])
def test_truncated_database_file_is_salvaged(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "node.db"
    _, ups = _updates(300)
    with Store.open(path) as store:
        for i in range(0, 300, 10):
            store.append_many("ws", ups[i : i + 10])
        store.claim_client_id("ws", True, random.Random(1))
        old_id = store.load("ws").client_id
        store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = path.stat().st_size
    cut = random.Random(seed).randrange(size // 3, size - 512)
    with open(path, "r+b") as f:
        f.truncate(cut)
    with Store.open(path) as store:
        assert store.open_problems, "damage must be reported"
        loaded = store.load("ws")
        assert not loaded.intact
        assert loaded.updates == ups[: len(loaded.updates)]
        assert store.claim_client_id("ws", loaded.intact, random.Random(2)) != old_id
    assert list(tmp_path.glob("node.db.corrupt-*")), "the damaged file is kept aside"


def test_disk_full_refuses_the_edit_and_keeps_previous_data(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    with Store.open(path) as store:
        pdoc = PersistedDoc.open(store, "ws")
        pdoc.commit(_set("before", 1))
        pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
        store._conn.execute(f"PRAGMA max_page_count={pages}")
        with pytest.raises(StoreFull, match="full") as info:
            store.append_many("ws", [os.urandom(64 * 1024)] * 4)
        assert "nothing was written" in str(info.value)
        with pytest.raises(StoreFull):
            pdoc.commit(_set("big", "x" * 200_000))
        # The refused edit is not in memory either: memory never runs ahead of disk.
        assert _content(pdoc.doc) == {"before": 1}
        assert store.load("ws").intact
        assert len(store.load("ws").updates) == 1
        store._conn.execute("PRAGMA max_page_count=1073741823")
        pdoc.commit(_set("after", 2))
    with Store.open(path) as store:
        assert _content(PersistedDoc.open(store, "ws").doc) == {"before": 1, "after": 2}


def test_read_only_store_refuses_with_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    _write_log(path, 3)
    with Store.open(path, read_only=True) as store:
        loaded = store.load("ws")
        assert loaded.intact
        assert len(loaded.updates) == 3
        with pytest.raises(StoreReadOnly, match="read-only"):
            store.append("ws", b"\x00\x00")
    with Store.open(path) as store:
        assert store.load("ws").seqs == [1, 2, 3]


def test_checksum_binds_position() -> None:
    assert checksum("ws", 1, b"a") != checksum("ws", 2, b"a")
    assert checksum("ws", 1, b"a") != checksum("wt", 1, b"a")
    assert len(checksum("ws", 1, b"a")) == 8


def test_own_writes_lost_compares_state_vectors() -> None:
    doc, ups = _updates(5, client_id=300)
    assert decode_state_vector(doc.get_state()) == {300: 5}
    behind = _rebuild(None, ups[:2])
    assert own_writes_lost(300, behind.get_state(), doc.get_state())
    assert not own_writes_lost(300, doc.get_state(), behind.get_state())
    with pytest.raises(ValueError, match="malformed"):
        decode_state_vector(b"\x05\x80")


def _kill_run(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    path = tmp_path / f"kill-{seed}.db"
    min_acks = 20
    kill_after = min_acks + rng.randrange(0, 200)
    acked: list[str] = []
    for run in range(2):  # the second run writes into the store the first one left behind
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.crdt.store_writer", str(path), f"r{run}", "5000"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        deadline = time.monotonic() + 10
        count = 0
        try:
            first = proc.stdout.readline()
            assert first.startswith("ready"), first
            while count < kill_after and time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line.startswith("ack "):
                    break
                acked.append(line.split()[1])
                count += 1
            os.kill(proc.pid, signal.SIGKILL)
            # Acks already written to the pipe before the kill count too.
            for line in proc.stdout:
                if line.startswith("ack "):
                    acked.append(line.split()[1])
        finally:
            proc.kill()
            proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        assert count >= min_acks, f"only {count} acks before the deadline"
        with Store.open(path) as store:
            pdoc = PersistedDoc.open(store, "ws")
            assert pdoc.loaded_intact, pdoc.problems
            present = _content(pdoc.doc)
        missing = [k for k in acked if k not in present]
        assert not missing, f"acknowledged edits lost after kill -9: {missing[:5]}"


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_kill_9_loses_no_acknowledged_edit(tmp_path: Path, seed: int) -> None:
    _kill_run(tmp_path, seed)
