"""Durable store: one SQLite file per node, a snapshot plus an append-only update log per document.

Contract (docs/architecture.md, "The path of an edit"): an update is acknowledged only after
:meth:`Store.append` returned, and :meth:`Store.append` returns only after its transaction was
committed *and fsynced*. ``kill -9`` at any moment therefore loses nothing acknowledged.

SQLite settings and why:

- ``journal_mode=WAL``: a commit is one sequential append to the ``-wal`` file plus one
  fsync; readers never block the writer. SQLite checksums every WAL frame, so a torn WAL
  tail (a crash in the middle of a commit) is detected by SQLite itself and the incomplete
  transaction is dropped at the next open - only ever a transaction that was never
  acknowledged, because the acknowledgement waits for the fsync.
- ``synchronous=FULL``, not ``NORMAL``: in WAL mode ``NORMAL`` fsyncs only at checkpoints, so
  a commit that returned can still be lost on power loss or a kernel crash (it is only in
  the page cache). ``FULL`` fsyncs the WAL at every commit: "acked == on disk".
- Every transaction is explicit (``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any
  error), so a refused write (disk full, read-only disk, I/O error) leaves nothing
  half-written.

Damage the store detects itself, beyond SQLite's own checks: every log row and every
snapshot carries a blake2b-8 checksum over (document, seq, data); a row that fails it, or
a gap in the sequence, ends the *intact prefix*. The prefix is kept, the rest is moved to
the ``quarantine`` table (kept for forensics, never loaded again) and the document is
marked damaged, so :meth:`Store.claim_client_id` takes a fresh client id (pycrdt trap: a
client id reused after losing local state makes peers silently drop the new writes). The
missing updates come back from peers through anti-entropy. A database file SQLite itself
reports as malformed is moved aside and its readable prefix salvaged into a fresh file.

Not thread-safe by design of its callers: one :class:`Store` per node, calls serialized
(an internal lock makes concurrent calls from ``trio.to_thread`` workers safe).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import random
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pycrdt import Doc, TransactionEvent, merge_updates

from crdt.yjs import decode_state_vector

SCHEMA_VERSION = 1
MAX_CLIENT_ID = 2**53 - 1  # Yjs (JavaScript) peers hold client ids as doubles
DEFAULT_MAX_UPDATES = 1000
DEFAULT_MAX_BYTES = 4 * 1024 * 1024

# Primary result codes (extended codes are masked with 0xFF).
_SQLITE_READONLY = 8
_SQLITE_IOERR = 10
_SQLITE_CORRUPT = 11
_SQLITE_FULL = 13
_SQLITE_CANTOPEN = 14
_SQLITE_NOTADB = 26

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS documents (
    name              TEXT PRIMARY KEY,
    snapshot          BLOB,
    snapshot_checksum BLOB,
    snapshot_seq      INTEGER NOT NULL DEFAULT 0,
    client_id         INTEGER,
    damaged           TEXT
);
CREATE TABLE IF NOT EXISTS updates (
    doc      TEXT    NOT NULL,
    seq      INTEGER NOT NULL,
    data     BLOB    NOT NULL,
    checksum BLOB    NOT NULL,
    PRIMARY KEY (doc, seq)
) WITHOUT ROWID;
-- Two small covering indexes for the last seq, read by every append: without them
-- SQLite walks the overflow pages of a large snapshot stored before snapshot_seq in its
-- row, and of large log rows (WITHOUT ROWID keeps whole rows in its b-tree): ~2 ms per
-- append at 10,000 vhosts.
CREATE INDEX IF NOT EXISTS documents_seq ON documents(name, snapshot_seq);
CREATE INDEX IF NOT EXISTS updates_seq ON updates(doc, seq);
CREATE TABLE IF NOT EXISTS quarantine (
    id     INTEGER PRIMARY KEY,
    doc    TEXT NOT NULL,
    seq    INTEGER,
    data   BLOB,
    reason TEXT NOT NULL,
    at     REAL NOT NULL
);
"""


class StoreError(Exception):
    """A durable-store operation failed; the message is meant for the operator."""


class StoreFull(StoreError):
    """The disk (or the database's size limit) is full; the edit was refused."""


class StoreReadOnly(StoreError):
    """The database or its disk is read-only; the edit was refused."""


class StoreCorrupt(StoreError):
    """The database file is damaged or an I/O error occurred reading or writing it."""


class _Rng(Protocol):
    def randrange(self, start: int, stop: int) -> int: ...


def checksum(doc: str, seq: int, data: bytes) -> bytes:
    """blake2b-8 over (document, seq, data): binds a row's bytes to its place in the log."""
    h = hashlib.blake2b(digest_size=8)
    h.update(doc.encode())
    h.update(b"\0")
    h.update(seq.to_bytes(8, "big", signed=True))
    h.update(data)
    return h.digest()


@dataclass(frozen=True)
class Loaded:
    """What :meth:`Store.load` found for one document.

    ``intact`` is False when anything was lost or quarantined (now or by an earlier load
    whose fresh client id was not claimed yet); ``problems`` says what, for the event log.
    """

    snapshot: bytes | None
    updates: list[bytes]
    intact: bool
    problems: list[str]
    client_id: int | None
    seqs: list[int] = field(default_factory=list)
    snapshot_seq: int = 0

    @property
    def last_seq(self) -> int:
        return self.seqs[-1] if self.seqs else self.snapshot_seq


@dataclass(frozen=True)
class LogStats:
    updates: int
    bytes: int
    last_seq: int


def _translate(exc: BaseException, path: Path, action: str) -> StoreError:
    """Map a sqlite3/OS error to a StoreError with an operator-facing message."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, OSError):
        if exc.errno == errno.ENOSPC:
            return StoreFull(f"cannot {action}: the disk holding {path} is full ({exc})")
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return StoreReadOnly(f"cannot {action}: {path} is not writable ({exc})")
        return StoreCorrupt(f"cannot {action}: I/O error on {path} ({exc})")
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary == _SQLITE_FULL:
        return StoreFull(
            f"cannot {action}: the disk holding {path} is full (or the database reached its "
            f"size limit); the edit was refused and nothing was written - free space and retry"
        )
    if primary == _SQLITE_READONLY:
        return StoreReadOnly(
            f"cannot {action}: {path} is read-only (file mode, read-only mount or a "
            f"read-only open); the edit was refused and nothing was written"
        )
    if primary in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return StoreCorrupt(f"cannot {action}: {path} is damaged ({exc})")
    if primary == _SQLITE_CANTOPEN and not os.access(path.parent, os.W_OK):
        return StoreReadOnly(
            f"cannot {action}: the directory {path.parent} is not writable (read-only disk "
            f"or permissions); SQLite needs it for the database and its -wal file"
        )
    if primary in (_SQLITE_IOERR, _SQLITE_CANTOPEN):
        return StoreCorrupt(f"cannot {action}: I/O error on {path} ({exc})")
    return StoreError(f"cannot {action}: {path}: {exc}")


class Store:
    """One node's durable store. Create with :meth:`open`."""

    def __init__(self, conn: sqlite3.Connection, path: Path, problems: list[str]) -> None:
        self._conn = conn
        self.path = path
        self._lock = threading.RLock()
        #: Damage found when opening (a malformed file moved aside and salvaged).
        self.open_problems = problems
        # A store opened read-only may predate the index: it then reads the row itself.
        try:
            indexed = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'documents_seq'"
            ).fetchone()
        except sqlite3.Error:
            indexed = None
        self._seq_from = "documents INDEXED BY documents_seq" if indexed else "documents"

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, read_only: bool = False) -> Store:
        """Open (creating if needed) the store at ``path``.

        A file SQLite reports as malformed is renamed ``<path>.corrupt-<time>`` and what can
        still be read is salvaged into a fresh file; the salvaged documents load as not
        intact (see :attr:`open_problems`).
        """
        p = Path(path)
        problems: list[str] = []
        healthy, detail = True, ""
        conn: sqlite3.Connection | None = None
        try:
            conn = cls._connect(p, read_only)
        except (sqlite3.Error, OSError) as exc:
            if read_only or not _is_corruption(exc):
                raise _translate(exc, p, "open the store") from exc
            healthy, detail = False, str(exc)
        if conn is not None:
            try:
                row = conn.execute("PRAGMA quick_check(1)").fetchone()
                healthy = row is not None and row[0] == "ok"
                detail = "" if row is None else str(row[0])
            except sqlite3.DatabaseError as exc:
                healthy, detail = False, str(exc)
        if not healthy:
            if conn is not None:
                conn.close()
            if read_only:
                raise StoreCorrupt(f"{p} is damaged ({detail}) and the store is read-only")
            try:
                problems = _salvage(p, detail)
            except (sqlite3.Error, OSError) as exc:
                raise _translate(exc, p, "salvage the damaged store") from exc
            try:
                conn = cls._connect(p, read_only)
            except (sqlite3.Error, OSError) as exc:
                raise _translate(exc, p, "open the store") from exc
        assert conn is not None
        return cls(conn, p, problems)

    @staticmethod
    def _connect(p: Path, read_only: bool) -> sqlite3.Connection:
        if read_only:
            uri = f"file:{p.resolve()}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(p, isolation_level=None, check_same_thread=False)
        try:
            _configure(conn, p, read_only)
        except BaseException:
            conn.close()
            raise
        return conn

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _write(self, action: str) -> Iterator[sqlite3.Connection]:
        """One committed (fsynced) transaction; rolled back and translated on any error."""
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error | OSError):
                    raise _translate(exc, self.path, action) from exc
                raise

    def _ensure_doc(self, conn: sqlite3.Connection, doc: str) -> None:
        conn.execute("INSERT OR IGNORE INTO documents(name) VALUES (?)", (doc,))

    def _last_seq(self, conn: sqlite3.Connection, doc: str) -> int:
        row = conn.execute(
            "SELECT max(coalesce((SELECT max(seq) FROM updates WHERE doc = ?), 0), "
            f"coalesce((SELECT snapshot_seq FROM {self._seq_from} WHERE name = ?), 0))",
            (doc, doc),
        ).fetchone()
        return int(row[0]) if row is not None else 0

    # -- the log ---------------------------------------------------------------------------

    def append(self, doc: str, update: bytes) -> int:
        """Append one update; durable (fsynced) when this returns. Returns its seq."""
        return self.append_many(doc, [update])[-1]

    def append_many(self, doc: str, updates: Sequence[bytes]) -> list[int]:
        """Append updates in one transaction (all or nothing). Returns their seqs."""
        if not updates:
            return []
        with self._write(f"persist an update to document {doc!r}") as conn:
            self._ensure_doc(conn, doc)
            seq = self._last_seq(conn, doc)
            seqs = []
            rows = []
            for data in updates:
                seq += 1
                data = bytes(data)
                rows.append((doc, seq, data, checksum(doc, seq, data)))
                seqs.append(seq)
            conn.executemany(
                "INSERT INTO updates(doc, seq, data, checksum) VALUES (?, ?, ?, ?)", rows
            )
        return seqs

    def documents(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._conn.execute("SELECT name FROM documents ORDER BY name")]

    def load(self, doc: str) -> Loaded:
        """Snapshot plus log, in order, up to the first damaged row (see the module docstring)."""
        problems: list[str] = []
        try:
            with self._lock:
                row = self._conn.execute(
                    "SELECT CAST(snapshot AS BLOB), CAST(snapshot_checksum AS BLOB), snapshot_seq, "
                    "client_id, damaged "
                    "FROM documents WHERE name = ?",
                    (doc,),
                ).fetchone()
                if row is None:
                    if self.open_problems:
                        # After a salvage, "absent" may mean "lost": do not call it intact.
                        problems.append(
                            f"document {doc!r}: not found in the salvaged store; "
                            "it comes back from peers"
                        )
                    return Loaded(None, [], not problems, problems, None)
                snapshot, snap_sum, snapshot_seq, client_id, damaged = row
                snapshot_seq = int(snapshot_seq)
                if damaged:
                    problems.append(f"document {doc!r}: earlier damage: {damaged}")
                bad_from: int | None = None
                if snapshot is not None and checksum(doc, snapshot_seq, snapshot) != snap_sum:
                    problems.append(
                        f"document {doc!r}: snapshot (up to seq {snapshot_seq}) fails its checksum"
                    )
                    bad_from = -1
                updates: list[bytes] = []
                seqs: list[int] = []
                if bad_from is None:
                    expected = snapshot_seq + 1
                    cur = self._conn.execute(
                        "SELECT seq, CAST(data AS BLOB), CAST(checksum AS BLOB) FROM updates "
                        "WHERE doc = ? ORDER BY seq",
                        (doc,),
                    )
                    try:
                        for seq, data, row_sum in cur:
                            if seq <= snapshot_seq:
                                continue  # left over from an older compaction: in the snapshot
                            if seq != expected:
                                problems.append(
                                    f"document {doc!r}: log gap, seq {expected} missing "
                                    f"(next is {seq})"
                                )
                                bad_from = seq
                                break
                            if not isinstance(data, bytes) or checksum(doc, seq, data) != row_sum:
                                problems.append(
                                    f"document {doc!r}: log row seq {seq} fails its checksum"
                                )
                                bad_from = seq
                                break
                            updates.append(data)
                            seqs.append(seq)
                            expected += 1
                    except sqlite3.DatabaseError as exc:
                        problems.append(
                            f"document {doc!r}: log unreadable after seq {expected - 1}: {exc}"
                        )
                        bad_from = expected
            if bad_from is not None:
                self._quarantine(doc, bad_from, "; ".join(problems))
                if bad_from == -1:
                    snapshot, snapshot_seq = None, 0
        except sqlite3.Error as exc:
            raise _translate(exc, self.path, f"load document {doc!r}") from exc
        return Loaded(
            snapshot=snapshot,
            updates=updates,
            intact=not problems,
            problems=problems,
            client_id=None if client_id is None else int(client_id),
            seqs=seqs,
            snapshot_seq=snapshot_seq,
        )

    def quarantine_from(self, doc: str, seq: int, reason: str) -> None:
        """Move log rows ``>= seq`` aside (e.g. a row pycrdt could not decode) and mark damage."""
        self._quarantine(doc, seq, reason)

    def _quarantine(self, doc: str, bad_from: int, reason: str) -> None:
        """Move the damaged tail aside, mark the document damaged. ``bad_from=-1``: everything."""
        now = time.time()
        try:
            with self._write(f"quarantine damaged rows of {doc!r}") as conn:
                self._ensure_doc(conn, doc)
                if bad_from == -1:
                    conn.execute(
                        "INSERT INTO quarantine(doc, seq, data, reason, at) "
                        "SELECT name, snapshot_seq, snapshot, ?, ? FROM documents WHERE name = ?",
                        ("snapshot: " + reason, now, doc),
                    )
                    conn.execute(
                        "UPDATE documents SET snapshot = NULL, snapshot_checksum = NULL, "
                        "snapshot_seq = 0 WHERE name = ?",
                        (doc,),
                    )
                    bad_from = -(2**62)
                conn.execute(
                    "INSERT INTO quarantine(doc, seq, data, reason, at) "
                    "SELECT doc, seq, data, ?, ? FROM updates WHERE doc = ? AND seq >= ?",
                    (reason, now, doc, bad_from),
                )
                conn.execute("DELETE FROM updates WHERE doc = ? AND seq >= ?", (doc, bad_from))
                conn.execute(
                    "UPDATE documents SET damaged = ? WHERE name = ?", (reason[:2000], doc)
                )
        except StoreError:
            # Cannot write (read-only, full): the load still reports the damage and refuses
            # to reuse the client id; the rows stay where they are.
            pass

    # -- client ids ------------------------------------------------------------------------

    def claim_client_id(self, doc: str, loaded_intact: bool, rng: _Rng | None = None) -> int:
        """The pycrdt client id this process must use for ``doc``, persisted.

        The persisted id is reused only if the document loaded intact; otherwise (or if none
        is stored) a fresh random id in ``[1, 2**53)`` is taken, persisted, and the damage
        mark cleared - updates made under the old id may exist on peers beyond what we have,
        and reusing it would make them silently drop our new writes.
        """
        r: _Rng = rng if rng is not None else random.SystemRandom()
        with self._write(f"claim a client id for {doc!r}") as conn:
            self._ensure_doc(conn, doc)
            row = conn.execute(
                "SELECT client_id, damaged FROM documents WHERE name = ?", (doc,)
            ).fetchone()
            old = None if row is None or row[0] is None else int(row[0])
            if loaded_intact and old is not None and not row[1]:
                return old
            new = r.randrange(1, MAX_CLIENT_ID + 1)
            while new == old:
                new = r.randrange(1, MAX_CLIENT_ID + 1)
            conn.execute(
                "UPDATE documents SET client_id = ?, damaged = NULL WHERE name = ?", (new, doc)
            )
            return new

    # -- compaction ------------------------------------------------------------------------

    def stats(self, doc: str) -> LogStats:
        with self._lock:
            try:
                row = self._conn.execute(
                    "SELECT count(*), coalesce(sum(length(data)), 0) FROM updates WHERE doc = ?",
                    (doc,),
                ).fetchone()
                last = self._last_seq(self._conn, doc)
            except sqlite3.Error as exc:
                raise _translate(exc, self.path, f"read log stats of {doc!r}") from exc
        return LogStats(int(row[0]), int(row[1]), last)

    def needs_compaction(
        self,
        doc: str,
        max_updates: int = DEFAULT_MAX_UPDATES,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> bool:
        s = self.stats(doc)
        return s.updates >= max_updates or s.bytes >= max_bytes

    def compact(self, doc: str, snapshot: bytes, upto_seq: int) -> None:
        """Replace the snapshot with ``snapshot`` (which must contain every update up to
        ``upto_seq``) and drop those log rows, in one transaction. Rows after ``upto_seq``
        (appended meanwhile) stay. Work is bounded by the rows dropped plus one snapshot."""
        snapshot = bytes(snapshot)
        with self._write(f"compact document {doc!r}") as conn:
            self._ensure_doc(conn, doc)
            row = conn.execute(
                f"SELECT snapshot_seq FROM {self._seq_from} WHERE name = ?", (doc,)
            ).fetchone()
            current = int(row[0]) if row is not None else 0
            if upto_seq < current:
                raise StoreError(
                    f"compaction of {doc!r} up to seq {upto_seq} is older than the stored "
                    f"snapshot (seq {current}); refused"
                )
            if upto_seq > self._last_seq(conn, doc):
                raise StoreError(
                    f"compaction of {doc!r} up to seq {upto_seq} is beyond the log's end; refused"
                )
            conn.execute(
                "UPDATE documents SET snapshot = ?, snapshot_checksum = ?, snapshot_seq = ? "
                "WHERE name = ?",
                (snapshot, checksum(doc, upto_seq, snapshot), upto_seq, doc),
            )
            conn.execute("DELETE FROM updates WHERE doc = ? AND seq <= ?", (doc, upto_seq))
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")


def _configure(conn: sqlite3.Connection, p: Path, read_only: bool) -> None:
    if not read_only:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()
        if mode is None or str(mode[0]).lower() != "wal":
            raise StoreError(f"{p}: cannot switch to WAL journal mode (got {mode!r})")
    # FULL, not NORMAL: see the module docstring (NORMAL loses acked commits on power loss).
    conn.execute("PRAGMA synchronous=FULL")
    # Keep the -wal file from staying huge after a burst (checkpoints still bound it).
    conn.execute("PRAGMA journal_size_limit=67108864")
    conn.execute("PRAGMA busy_timeout=5000")
    if read_only:
        return
    conn.execute("BEGIN IMMEDIATE")
    for stmt in _SCHEMA.split(";"):
        if stmt.strip():
            conn.execute(stmt)
    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    if row is None:
        conn.execute(
            "INSERT INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )
    elif int(row[0]) > SCHEMA_VERSION:
        conn.execute("ROLLBACK")
        raise StoreError(
            f"{p} has store schema {row[0]}, newer than this version understands "
            f"({SCHEMA_VERSION}); upgrade nxmesh"
        )
    conn.execute("COMMIT")


def _is_corruption(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


def _salvage(p: Path, detail: str) -> list[str]:
    """Move a malformed database aside and copy whatever is readable into a fresh file."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    aside = p.with_name(f"{p.name}.corrupt-{stamp}")
    docs: dict[str, tuple[Any, Any, int, list[tuple[int, bytes, bytes]], str | None]] = {}
    problems = [f"{p}: database file damaged ({detail}); moved to {aside.name}, salvaging"]
    for suffix in ("", "-wal", "-shm"):
        f = Path(str(p) + suffix)
        if f.exists():
            os.replace(f, Path(str(aside) + suffix))
    # Read from a copy padded back to the size its header claims: a truncated file then
    # still yields every b-tree page that survived (missing pages read as damaged).
    work = Path(str(aside) + ".salvage")
    src: sqlite3.Connection | None = None
    try:
        shutil.copyfile(aside, work)
        wal = Path(str(aside) + "-wal")
        if wal.exists():
            shutil.copyfile(wal, Path(str(work) + "-wal"))
        with open(work, "r+b") as fh:
            header = fh.read(100)
            if len(header) == 100 and header.startswith(b"SQLite format 3\0"):
                page_size = int.from_bytes(header[16:18], "big")
                page_size = 65536 if page_size == 1 else page_size
                pages = int.from_bytes(header[28:32], "big")
                if fh.seek(0, 2) < pages * page_size:
                    fh.truncate(pages * page_size)
        src = sqlite3.connect(work, isolation_level=None)
    except (sqlite3.Error, OSError) as exc:
        problems.append(f"{p}: nothing salvageable: {exc}")
    if src is not None:
        try:
            names = [r[0] for r in src.execute("SELECT name FROM documents")]
            names = [n for n in names if isinstance(n, str)]
        except sqlite3.DatabaseError as exc:
            problems.append(f"{p}: document list unreadable: {exc}")
            names = []
        with contextlib.suppress(sqlite3.DatabaseError):
            # Rows of documents whose row in `documents` was lost.
            for (name,) in src.execute("SELECT DISTINCT doc FROM updates"):
                if isinstance(name, str) and name not in names:
                    names.append(name)
        for name in names:
            snap: Any = None
            snap_sum: Any = None
            snap_seq = 0
            rows: list[tuple[int, bytes, bytes]] = []
            try:
                r = src.execute(
                    "SELECT snapshot, snapshot_checksum, snapshot_seq FROM documents "
                    "WHERE name = ?",
                    (name,),
                ).fetchone()
                if r is not None:
                    snap, snap_sum, snap_seq = r[0], r[1], int(r[2])
                for seq, data, s in src.execute(
                    "SELECT seq, data, checksum FROM updates WHERE doc = ? ORDER BY seq", (name,)
                ):
                    rows.append((int(seq), data, s))
            except sqlite3.DatabaseError as exc:
                problems.append(f"document {name!r}: read stopped after {len(rows)} rows: {exc}")
            docs[name] = (snap, snap_sum, snap_seq, rows, "database file damaged; salvaged")
        src.close()
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(OSError):
            os.unlink(str(work) + suffix)
    dst = Store._connect(p, read_only=False)
    try:
        dst.execute("BEGIN IMMEDIATE")
        for name, (snap, snap_sum, snap_seq, rows, why) in docs.items():
            dst.execute(
                "INSERT INTO documents(name, snapshot, snapshot_checksum, snapshot_seq, "
                "client_id, damaged) VALUES (?, ?, ?, ?, NULL, ?)",
                (name, snap, snap_sum, snap_seq, why),
            )
            dst.executemany(
                "INSERT INTO updates(doc, seq, data, checksum) VALUES (?, ?, ?, ?)",
                [(name, seq, data, s) for seq, data, s in rows],
            )
        dst.execute("COMMIT")
    finally:
        dst.close()
    problems.append(f"{p}: salvaged {len(docs)} document(s); the rest comes back from peers")
    return problems


def own_writes_lost(client_id: int, local_state: bytes, peer_state: bytes) -> bool:
    """True when a peer has seen more of ``client_id``'s updates than we hold locally.

    That means local state was lost (restored backup, lost log tail): keep writing under
    this id and peers drop the new writes. The replicator calls this with each peer's state
    vector and, if True, switches to a fresh client id (:meth:`Store.claim_client_id` with
    ``loaded_intact=False``).
    """
    return decode_state_vector(peer_state).get(client_id, 0) > decode_state_vector(local_state).get(
        client_id, 0
    )


class PersistedDoc:
    """A pycrdt document whose every local edit is durable before it is acknowledged.

    Use from one thread; never hold the document's transaction across an await.
    Broadcast only what :meth:`commit` returns - never updates observed on :attr:`doc`
    directly: on a failed write the in-memory document is rebuilt from disk, so edits that
    were refused must never have left the process.
    """

    def __init__(self, store: Store, name: str, rng: _Rng | None = None) -> None:
        self.store = store
        self.name = name
        self._rng = rng
        self.problems: list[str] = []
        self.loaded_intact = True
        self.doc: Doc[Any] = Doc()
        self.generation = 0
        """Bumped by every transaction (local or remote) and every reload: readers that
        derive something from the document recompute when it moved."""
        self._captured: list[bytes] = []
        self._reload(force_fresh_id=False)

    @classmethod
    def open(cls, store: Store, name: str, rng: _Rng | None = None) -> PersistedDoc:
        return cls(store, name, rng)

    def _reload(self, *, force_fresh_id: bool) -> None:
        loaded = self.store.load(self.name)
        problems = list(loaded.problems)
        intact = loaded.intact
        # Decode straight into the working document, under the client id claimed on the
        # assumption that every row decodes: one copy of the state in memory. (Decoding
        # into a staging document copied over afterwards doubled the peak, and the freed
        # half stays in the process: about 110 MB more RSS at 10,000 vhosts.) A row that
        # does not decode is handled as before - quarantined from there on, the load not
        # intact - and the document rebuilt from the rows before it under a fresh id.
        client_id = self._claim(intact, force_fresh_id)
        doc: Doc[Any] = Doc(client_id=client_id)
        good: list[bytes] = []
        if loaded.snapshot is not None:
            try:
                doc.apply_update(loaded.snapshot)
                good.append(loaded.snapshot)
            except ValueError as exc:
                problems.append(f"document {self.name!r}: snapshot does not decode: {exc}")
                self.store.quarantine_from(self.name, -(2**62), problems[-1])
                intact = False
                client_id = self._claim(intact, force_fresh_id)
                doc = Doc(client_id=client_id)
                good = []
        for seq, data in zip(loaded.seqs, loaded.updates, strict=True):
            try:
                doc.apply_update(data)
                good.append(data)
            except ValueError as exc:
                problems.append(f"document {self.name!r}: log row seq {seq} does not decode: {exc}")
                self.store.quarantine_from(self.name, seq, problems[-1])
                if intact:
                    intact = False
                    client_id = self._claim(intact, force_fresh_id)
                    doc = Doc(client_id=client_id)
                    for ok in good:
                        doc.apply_update(ok)
                break
        del good
        doc.observe(self._on_transaction)
        self.doc = doc
        self.generation += 1
        self.problems = problems
        self.loaded_intact = intact
        self._last_seq = loaded.last_seq

    def _claim(self, intact: bool, force_fresh_id: bool) -> int:
        """The client id to use (see :meth:`Store.claim_client_id`)."""
        try:
            return self.store.claim_client_id(self.name, intact and not force_fresh_id, self._rng)
        except StoreError:
            if not force_fresh_id:
                raise
            # The disk refuses writes: a fresh id in memory only. Safe: the next start
            # reuses the persisted id, whose last clock on disk is all that ever left us.
            rng: _Rng = self._rng if self._rng is not None else random.SystemRandom()
            return rng.randrange(1, MAX_CLIENT_ID + 1)

    def _on_transaction(self, event: TransactionEvent) -> None:
        # Observers must not write to the document: only record the update.
        self._captured.append(bytes(event.update))
        self.generation += 1

    @property
    def client_id(self) -> int:
        return self.doc.client_id

    def commit(self, fn: Callable[[Doc[Any]], None]) -> bytes | None:
        """Run ``fn(doc)`` in one transaction, persist its update (fsync), return it.

        Returns None when ``fn`` changed nothing. When ``fn`` raises, whatever it already
        changed is persisted too (memory and disk never disagree) and the error re-raised.
        When persisting fails (:class:`StoreError`), the document is rebuilt from disk under
        a fresh client id and the error re-raised: the edit is not acknowledged.
        """
        self._captured.clear()
        error: BaseException | None = None
        try:
            with self.doc.transaction():
                fn(self.doc)
        except Exception as exc:
            error = exc
        update = self._take_captured()
        if update is not None:
            self._persist(update)
        if error is not None:
            raise error
        return update

    def apply_remote(self, update: bytes) -> None:
        """Apply a peer's update and persist it (Yjs updates are idempotent)."""
        self._captured.clear()
        self.doc.apply_update(update)
        changed = self._take_captured()
        if changed is not None:
            # Persist the update as received: it may carry structs still pending on
            # missing dependencies, which the transaction's own update leaves out.
            self._persist(bytes(update))

    def _take_captured(self) -> bytes | None:
        captured, self._captured = self._captured, []
        if not captured:
            return None
        if len(captured) == 1:
            return captured[0]
        return merge_updates(*captured)

    def _persist(self, update: bytes) -> None:
        try:
            self._last_seq = self.store.append(self.name, update)
        except StoreError:
            # Memory is ahead of disk: drop the refused change by rebuilding from disk.
            self._reload(force_fresh_id=True)
            raise

    def compact_if_needed(
        self, max_updates: int = DEFAULT_MAX_UPDATES, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> bool:
        if not self.store.needs_compaction(self.name, max_updates, max_bytes):
            return False
        self.compact()
        return True

    def compact(self) -> None:
        """Snapshot the current document and drop the log rows it covers."""
        self.store.compact(self.name, self.doc.get_update(), self._last_seq)
