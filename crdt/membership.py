"""The mesh document's trust records and node assignments, and what follows from them.

Layout (two top-level Maps of the mesh document, see docs/state.md):

``trust``
    record id -> msgpack of a :mod:`crdt.trust` record (genesis, admissions, revocations,
    invites). Records are immutable and keyed by a hash of their signed body, so two
    nodes writing the same record write the same key with the same value; the one field
    that changes, an invite's ``uses_left``, is rewritten under the same key.
``assignments``
    ``"<node key hex>/<workspace id>"`` -> ``True``: the node serves (replicates and
    renders) the workspace; the workspace ``*`` means every workspace (what a node gets
    when it joins, so a fleet of identical nodes needs no assignments at all). One flat
    key per pair, so assigning two workspaces to a node concurrently keeps both;
    unassigning deletes the key. Assigning a pair that is already assigned writes
    nothing. :meth:`MeshState.replace_assignments` rewrites a node's whole set in one
    transaction (the API's ``PUT /v1/nodes/{name}/workspaces``).

:class:`MeshState` recomputes the member set (:class:`crdt.trust.TrustVerifier`) and the
assignments whenever the document moved (``PersistedDoc.generation``), lazily: answering
:meth:`MeshState.is_member` per datagram costs one integer comparison. Only members serve:
an assignment of a revoked or never-admitted key is ignored.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pycrdt import Doc, Map

from crdt.documents import workspace_of
from crdt.store import PersistedDoc
from crdt.trust import (
    Genesis,
    Invite,
    Problem,
    Record,
    RecordError,
    TrustVerifier,
    pack_record,
    parse_record,
)

__all__ = [
    "ALL_WORKSPACES",
    "ASSIGNMENTS",
    "TRUST",
    "MeshState",
    "assigned",
    "assignment_key",
    "replace_assignments",
]

TRUST = "trust"
"""Top-level Map of trust records in the mesh document."""
ASSIGNMENTS = "assignments"
"""Top-level Map of node -> workspace assignments in the mesh document."""
ALL_WORKSPACES = "*"
"""The assignment meaning "every workspace"."""
_KEY_HEX = 64


def assignment_key(node_key: bytes, workspace_id: str) -> str:
    """The ``assignments`` key of (node, workspace)."""
    return f"{node_key.hex()}/{workspace_id}"


def _check_workspace_id(workspace_id: str) -> None:
    if not workspace_id or "/" in workspace_id:
        raise ValueError("a workspace id is non-empty and has no '/'")


def assigned(doc: Doc[Any], node_key: bytes) -> frozenset[str]:
    """The workspace ids (``*`` included) the ``assignments`` Map gives ``node_key``,
    membership aside: what a replacement starts from."""
    prefix = f"{node_key.hex()}/"
    return frozenset(
        key[len(prefix) :]
        for key, value in _items(doc, ASSIGNMENTS)
        if key.startswith(prefix) and len(key) > len(prefix) and value is True
    )


def replace_assignments(
    persisted: PersistedDoc, node_key: bytes, workspaces: Iterable[str]
) -> bytes | None:
    """Make ``node_key`` serve exactly ``workspaces`` (ids, or ``*`` for all) in one
    durable transaction: its other keys are deleted, missing ones added. Returns the
    update, None when the assignment was already that."""
    wanted = set(workspaces)
    for workspace_id in wanted:
        _check_workspace_id(workspace_id)
    prefix = f"{node_key.hex()}/"
    keep = {prefix + ws for ws in wanted}

    def write(doc: Doc[Any]) -> None:
        assignments = doc.get(ASSIGNMENTS, type=Map)
        for key in [k for k in assignments if k.startswith(prefix) and k not in keep]:
            del assignments[key]
        for key in sorted(keep):
            if assignments.get(key) is not True:
                assignments[key] = True

    return persisted.commit(write)


class MeshState:
    """Members and assignments as the mesh document says, kept current lazily."""

    def __init__(self, persisted: PersistedDoc, genesis: Genesis) -> None:
        self.persisted = persisted
        self.verifier = TrustVerifier(genesis)
        self._seen_generation = -1
        self._served: dict[str, frozenset[bytes]] = {}
        self._everywhere: frozenset[bytes] = frozenset()
        self._assignment_problems: list[Problem] = []

    # ------------------------------------------------------------------ reading

    def _fresh(self) -> TrustVerifier:
        if self.persisted.generation != self._seen_generation:
            self._recompute()
        return self.verifier

    def _recompute(self) -> None:
        doc = self.persisted.doc
        self._seen_generation = self.persisted.generation
        records: list[Any] = []
        problems: list[Problem] = []
        for record_id, value in _items(doc, TRUST):
            if isinstance(value, bytes | bytearray):
                records.append(bytes(value))
            else:
                problems.append((record_id, "trust record is not bytes"))
        parsed: list[Record | dict[str, Any]] = []
        for index, raw in enumerate(records):
            try:
                parsed.append(parse_record(raw))
            except RecordError as exc:
                problems.append((f"#{index}", f"malformed record: {exc}"))
        self.verifier.update(parsed)
        self.verifier.problems.extend(problems)
        served: dict[str, set[bytes]] = {}
        bad: list[Problem] = []
        for key, value in _items(doc, ASSIGNMENTS):
            node_hex, _, workspace = key.partition("/")
            try:
                node = bytes.fromhex(node_hex)
            except ValueError:
                node = b""
            if len(node_hex) != _KEY_HEX or not node or not workspace or value is not True:
                bad.append((key, "malformed assignment"))
                continue
            served.setdefault(workspace, set()).add(node)
        self._everywhere = frozenset(served.pop(ALL_WORKSPACES, ()))
        self._served = {ws: frozenset(nodes) for ws, nodes in served.items()}
        self._assignment_problems = bad

    def is_member(self, key: bytes) -> bool:
        """mesh/'s question: may ``key`` take part in the mesh now?"""
        return self._fresh().is_member(key)

    @property
    def members(self) -> frozenset[bytes]:
        return self._fresh().members

    @property
    def problems(self) -> list[Problem]:
        """Rejected trust records and malformed assignments, ``(id, reason)``."""
        return [*self._fresh().problems, *self._assignment_problems]

    def servers(self, workspace_id: str) -> frozenset[bytes]:
        """Members that serve ``workspace_id``."""
        verifier = self._fresh()
        nodes = self._served.get(workspace_id, frozenset()) | self._everywhere
        return frozenset(k for k in nodes if verifier.is_member(k))

    def serves(self, node_key: bytes, workspace_id: str) -> bool:
        """Whether ``node_key`` is a member that serves ``workspace_id``."""
        verifier = self._fresh()
        assigned = node_key in self._everywhere or node_key in self._served.get(workspace_id, ())
        return assigned and verifier.is_member(node_key)

    def serves_all(self, node_key: bytes) -> bool:
        """Whether ``node_key`` is a member assigned every workspace (``*``)."""
        verifier = self._fresh()  # first: it recomputes the assignments
        return node_key in self._everywhere and verifier.is_member(node_key)

    def workspaces_of(self, node_key: bytes) -> frozenset[str]:
        """Workspaces ``node_key`` is assigned by id (empty unless it is a member; see
        :meth:`serves_all` for the ``*`` assignment)."""
        verifier = self._fresh()
        if not verifier.is_member(node_key):
            return frozenset()
        return frozenset(ws for ws, nodes in self._served.items() if node_key in nodes)

    def audience(self, peer: bytes, document: str) -> bool:
        """Whether ``peer`` replicates ``document``: every member replicates the mesh
        document, serving members a workspace's (the Replicator's ``audience``)."""
        workspace = workspace_of(document)
        return self.is_member(peer) if workspace is None else self.serves(peer, workspace)

    def invite(self, invite_id: bytes) -> Invite | None:
        return self._fresh().invites.get(invite_id)

    # ------------------------------------------------------------------ writing

    def add_records(self, records: Iterable[Record]) -> bytes | None:
        """Store trust records (durably); returns the update to broadcast."""
        packed = [(r.record_id, pack_record(r)) for r in records]

        def write(doc: Doc[Any]) -> None:
            trust = doc.get(TRUST, type=Map)
            for record_id, data in packed:
                if _plain_bytes(trust.get(record_id)) != data:
                    trust[record_id] = data

        return self.persisted.commit(write)

    def assign(self, node_key: bytes, workspace_id: str, *, serve: bool = True) -> bytes | None:
        """Make ``node_key`` serve ``workspace_id`` (or stop); returns the update."""
        _check_workspace_id(workspace_id)
        key = assignment_key(node_key, workspace_id)

        def write(doc: Doc[Any]) -> None:
            assignments = doc.get(ASSIGNMENTS, type=Map)
            if serve and assignments.get(key) is not True:
                assignments[key] = True
            elif not serve and key in assignments:
                del assignments[key]

        return self.persisted.commit(write)

    def replace_assignments(self, node_key: bytes, workspaces: Iterable[str]) -> bytes | None:
        """Make ``node_key`` serve exactly ``workspaces`` (see :func:`replace_assignments`)."""
        return replace_assignments(self.persisted, node_key, workspaces)


def _items(doc: Doc[Any], name: str) -> list[tuple[str, Any]]:
    root = doc.get(name, type=Map)
    return list(root.items())


def _plain_bytes(value: object) -> bytes | None:
    return bytes(value) if isinstance(value, bytes | bytearray) else None
