"""Replication glue: pycrdt documents over mesh/ broadcasts and anti-entropy.

A :class:`Replicator` is the :class:`mesh.Delegate` of a node. It owns nothing of the
network; it turns documents into payloads and payloads back into documents:

- **Eager path.** Each local commit's update (``PersistedDoc.commit``, durable before it
  returns) becomes one broadcast payload, :meth:`Replicator.publish`; mesh/ pushes it at
  once and gossips it (over TCP when it does not fit a datagram). A delivered payload is
  applied and persisted by :meth:`Replicator.deliver`. Updates over 128 bytes travel
  zlib-compressed when that is shorter (an entity's creation then fits a datagram).
- **Anti-entropy.** In mesh/'s three-leg push-pull the initiator sends the state vector
  of every document it replicates; the responder answers with what the initiator lacks
  (zlib-compressed) plus its own state vectors; the initiator applies that and sends
  back what the responder lacks. A document is only ever sent to a node that named it,
  so a node that does not replicate a workspace never receives that workspace's
  document through this path.
- **Out of order.** An update whose dependencies have not arrived is kept by pycrdt as
  pending inside the document (and persisted as received); it is integrated when the
  missing updates come, by broadcast or anti-entropy.

- **Audience.** A workspace document's updates are mesh *topic* broadcasts (the topic is
  the workspace id, :meth:`Replicator.topic_of`): mesh/ sends and relays them only to
  the members :meth:`Replicator.in_audience` names - those that serve the workspace
  (``audience``, normally :meth:`crdt.membership.MeshState.serves`). The mesh document
  goes to everyone.

Payloads are msgpack. Anything undecodable from a peer is dropped and counted, never
raised.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable
from typing import Any, NamedTuple

import msgpack

from crdt import yjs
from crdt.documents import MESH_DOCUMENT, workspace_document, workspace_of
from crdt.store import PersistedDoc, StoreError

VERSION = 1


class Outgoing(NamedTuple):
    """A broadcast to hand to mesh/: ``MeshNode.broadcast(payload, topic)``."""

    payload: bytes
    topic: str


MAX_INFLATED = 256 * 1024 * 1024
"""Largest decompressed anti-entropy payload accepted (a zip bomb stops here)."""
MAX_BROADCAST_INFLATED = 64 * 1024 * 1024
"""Largest decompressed broadcast update: mesh/'s largest frame (``max_frame``), the
most an uncompressed update could have been."""
_COMPRESS_OVER = 128
"""A broadcast update longer than this (bytes) is sent zlib-compressed when that is
shorter: ``[VERSION, deflated, _ZLIB]`` instead of ``[VERSION, update]``."""
_ZLIB = 1


class Replicator:
    """The documents this node replicates, as seen by mesh/ (implements mesh.Delegate)."""

    def __init__(
        self,
        is_member: Callable[[bytes], bool],
        audience: Callable[[bytes, str], bool] | None = None,
        admit: Callable[[bytes, bytes], bytes | None] | None = None,
    ) -> None:
        """``audience(peer, document name)``: whether ``peer`` replicates that (workspace)
        document; every member does when omitted. ``admit``: answers mesh/'s admission
        requests from non-members (refused when omitted)."""
        self._is_member = is_member
        self._audience = audience
        self._admit = admit
        self.on_applied: Callable[[str], None] | None = None
        """Called with the document's name after a peer's update changed it."""
        self.docs: dict[str, PersistedDoc] = {}
        self._summaries: dict[str, tuple[int, bytes, bytes]] = {}
        self.drops: Counter[str] = Counter()
        self.applied = 0

    def replicate(self, name: str, doc: PersistedDoc) -> None:
        """Start replicating ``doc`` under ``name`` (the store and wire name)."""
        self.docs[name] = doc

    # ------------------------------------------------------------------ eager path

    @staticmethod
    def topic_of(name: str) -> str:
        """The mesh broadcast topic of document ``name``: empty (everyone) for the mesh
        document, the workspace id for a workspace document."""
        return workspace_of(name) or ""

    @staticmethod
    def document_of(topic: str) -> str:
        """The document a broadcast topic names (inverse of :meth:`topic_of`)."""
        return workspace_document(topic) if topic else MESH_DOCUMENT

    @staticmethod
    def publish(name: str, update: bytes) -> Outgoing:
        """The broadcast carrying one committed update of document ``name``:
        ``node.broadcast(*Replicator.publish(name, update))``. The topic names the
        document, so the payload does not repeat it."""
        fields: list[Any] = [VERSION, update]
        if len(update) > _COMPRESS_OVER:
            # Updates repeat field names and ids: zlib about halves an entity's creation,
            # which then still travels in one datagram instead of over TCP.
            packed = zlib.compress(update, 6)
            if len(packed) < len(update):
                fields = [VERSION, packed, _ZLIB]
        return Outgoing(msgpack.packb(fields, use_bin_type=True), Replicator.topic_of(name))

    def deliver(self, payload: bytes, topic: str = "") -> None:
        """Apply a broadcast payload from a peer (durably); bad payloads are counted."""
        fields = _unpack(payload)
        if (
            not isinstance(fields, list)
            or len(fields) < 2
            or fields[0] != VERSION
            or not isinstance(fields[1], bytes)
        ):
            self.drops["malformed"] += 1
            return
        doc = self.docs.get(self.document_of(topic))
        if doc is None:
            self.drops["not_replicated"] += 1
            return
        update = fields[1]
        if len(fields) > 2 and fields[2] == _ZLIB:
            inflated = _inflate(fields[1], MAX_BROADCAST_INFLATED)
            if inflated is None:
                self.drops["malformed"] += 1
                return
            update = inflated
        elif len(fields) > 2:
            self.drops["malformed"] += 1  # an encoding this version does not know
            return
        self._apply(doc, update)

    def _apply(self, doc: PersistedDoc, update: bytes) -> None:
        before = doc.generation
        try:
            doc.apply_remote(update)
        except (ValueError, RuntimeError):
            # pycrdt refuses an update it cannot decode: a peer's bug, not ours.
            self.drops["bad_update"] += 1
            return
        except StoreError:
            # Our disk refused it (full, read-only, I/O error). The document was rebuilt
            # from disk, so memory holds nothing unpersisted; anti-entropy brings the
            # update again once writes succeed. Raising would stop the daemon.
            self.drops["not_persisted"] += 1
            return
        self.applied += 1
        if doc.generation != before and self.on_applied is not None:
            self.on_applied(doc.name)

    def forget(self, name: str) -> None:
        """Stop replicating ``name`` (this node no longer serves that workspace)."""
        self.docs.pop(name, None)

    # ------------------------------------------------------------------ mesh.Delegate

    def is_member(self, key: bytes) -> bool:
        """Whether ``key`` may take part in the mesh."""
        return self._is_member(key)

    def admit(self, peer: bytes, payload: bytes) -> bytes | None:
        """A non-member asks to join: the admission handler's answer, or None."""
        return None if self._admit is None else self._admit(peer, payload)

    def in_audience(self, peer: bytes, topic: str) -> bool:
        """Whether a broadcast on ``topic`` (see :meth:`topic_of`) should reach ``peer``."""
        return self._audience is None or self._audience(peer, self.document_of(topic))

    def local_state(self, peer: bytes, join: bool) -> bytes:
        """First leg: the state vector and delete-set digest of every document here."""
        return msgpack.packb(self._summary(), use_bin_type=True)

    def merge_remote_state(self, peer: bytes, payload: bytes, join: bool) -> bytes:
        """Second leg: what the initiator lacks, and our own summary."""
        message = _unpack(payload)
        reply = {**self._summary(), "diff": self._diffs(message)}
        return msgpack.packb(reply, use_bin_type=True)

    def merge_reply(self, peer: bytes, payload: bytes, join: bool) -> bytes:
        """Third leg: apply what we lacked; return what the responder lacks."""
        message = _unpack(payload)
        if not isinstance(message, dict):
            self.drops["malformed"] += 1
            return b""
        self._apply_diffs(message.get("diff"))
        diffs = self._diffs(message)
        return msgpack.packb({"diff": diffs}, use_bin_type=True) if diffs else b""

    def merge_final(self, peer: bytes, payload: bytes) -> None:
        """The responder's last leg: apply what it lacked."""
        if not payload:
            return
        message = _unpack(payload)
        if not isinstance(message, dict):
            self.drops["malformed"] += 1
            return
        self._apply_diffs(message.get("diff"))

    # ------------------------------------------------------------------ helpers

    def _summary(self) -> dict[str, dict[str, bytes]]:
        """Per document: its state vector, and a digest of its delete set (a deletion
        adds no clock, so equal state vectors alone do not prove equal documents)."""
        svs: dict[str, bytes] = {}
        digests: dict[str, bytes] = {}
        for name, doc in self.docs.items():
            svs[name], digests[name] = self._cached(doc)
        return {"sv": svs, "ds": digests}

    def _cached(self, doc: PersistedDoc) -> tuple[bytes, bytes]:
        hit = self._summaries.get(doc.name)
        if hit is None or hit[0] != doc.generation:
            hit = (doc.generation, doc.doc.get_state(), yjs.digest(doc.doc))
            self._summaries[doc.name] = hit
        return hit[1], hit[2]

    def _diffs(self, message: Any) -> dict[str, bytes]:
        """For each document both sides replicate and the peer lacks something of (a
        clock, or a deletion: the digests differ), the update it lacks, compressed."""
        svs = message.get("sv") if isinstance(message, dict) else None
        digests = message.get("ds") if isinstance(message, dict) else None
        if not isinstance(svs, dict):
            self.drops["malformed"] += 1
            return {}
        if not isinstance(digests, dict):
            digests = {}
        out = {}
        for name, sv in svs.items():
            doc = self.docs.get(name) if isinstance(name, str) else None
            if doc is None or not isinstance(sv, bytes):
                continue
            ours, our_digest = self._cached(doc)
            try:
                behind = yjs.lacks(yjs.decode_state_vector(sv), yjs.decode_state_vector(ours))
            except ValueError:
                self.drops["bad_state_vector"] += 1
                continue
            if not behind and digests.get(name) == our_digest:
                continue  # in sync: nothing to send, not even the delete set
            try:
                missing = doc.doc.get_update(sv)
            except (ValueError, RuntimeError):
                self.drops["bad_state_vector"] += 1
                continue
            # Large diffs (joins) compress fast rather than small: the loop waits on it.
            out[name] = zlib.compress(missing, 6 if len(missing) < _FAST_ZLIB else 1)
        return out

    def _apply_diffs(self, diffs: Any) -> None:
        if not isinstance(diffs, dict):
            return
        for name, blob in diffs.items():
            doc = self.docs.get(name) if isinstance(name, str) else None
            if doc is None or not isinstance(blob, bytes):
                self.drops["not_replicated" if doc is None else "malformed"] += 1
                continue
            update = _inflate(blob)
            if update is None:
                self.drops["malformed"] += 1
                continue
            self._apply(doc, update)


_FAST_ZLIB = 256 * 1024
"""Diffs at least this large are compressed at level 1 (4x faster than 6, ~20% larger)."""


def _unpack(payload: bytes) -> Any:
    try:
        return msgpack.unpackb(payload, raw=False, strict_map_key=True, max_ext_len=0)
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
        return None


def _inflate(blob: bytes, limit: int = MAX_INFLATED) -> bytes | None:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(blob, limit)
    except zlib.error:
        return None
    if inflater.unconsumed_tail or not inflater.eof:
        return None
    return out
