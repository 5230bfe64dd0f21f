"""The hooks through which the state plane plugs into mesh/ (as memberlist's delegate)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class Delegate(Protocol):
    """What mesh/ asks of its owner. Calls are synchronous and must be quick."""

    def is_member(self, key: bytes) -> bool:
        """Whether ``key`` (an Ed25519 public key) may take part in the mesh now."""
        ...

    def in_audience(self, peer: bytes, topic: str) -> bool:
        """Whether a broadcast on ``topic`` (never empty) should reach ``peer``. A node
        sends and relays topic broadcasts only to members for which this is true."""
        ...

    def admit(self, peer: bytes, payload: bytes) -> bytes | None:
        """A non-member ``peer`` asks to be admitted (only on a node started with
        ``admissions=True``): return the reply for it - an acceptance, having made it a
        member so that ``is_member(peer)`` is now true, or a refusal saying why - or None
        to close the stream without a word."""
        ...

    def local_state(self, peer: bytes, join: bool) -> bytes:
        """Anti-entropy, first leg (initiator): the application's summary for ``peer``,
        e.g. state vectors. ``join`` is true when this node is joining through ``peer``."""
        ...

    def merge_remote_state(self, peer: bytes, payload: bytes, join: bool) -> bytes:
        """Second leg (responder): take the initiator's summary, return the reply,
        e.g. what the initiator lacks plus our own state vectors."""
        ...

    def merge_reply(self, peer: bytes, payload: bytes, join: bool) -> bytes:
        """Third leg (initiator): take the reply; return what the responder lacks
        (``b""`` for nothing), sent back on the same stream."""
        ...

    def merge_final(self, peer: bytes, payload: bytes) -> None:
        """Responder: the initiator's last leg."""
        ...


class Answerer(Protocol):
    """Answers members' queries (:meth:`mesh.MeshNode.query`); optional, given to the
    :class:`~mesh.MeshNode` as ``answerer``. Without one every query is refused."""

    async def answer_query(self, sender: bytes, payload: bytes) -> bytes | None:
        """The answer to member ``sender``'s ``payload`` (at most
        :data:`~mesh.query.QUERY_MAX_ANSWER` bytes), or None to refuse. Runs within the
        node's ``stream_timeout``; at most :data:`~mesh.query.MAX_SERVED_QUERIES` at once."""
        ...


class StaticMembers:
    """A delegate with a fixed member set and no application state (tests, benchmarks)."""

    def __init__(self, keys: Iterable[bytes] = (), *, allow_all: bool = False) -> None:
        self.keys = set(keys)
        self.allow_all = allow_all

    def is_member(self, key: bytes) -> bool:
        return self.allow_all or key in self.keys

    def in_audience(self, peer: bytes, topic: str) -> bool:
        return True

    def admit(self, peer: bytes, payload: bytes) -> bytes | None:
        return None

    def local_state(self, peer: bytes, join: bool) -> bytes:
        return b""

    def merge_remote_state(self, peer: bytes, payload: bytes, join: bool) -> bytes:
        return b""

    def merge_reply(self, peer: bytes, payload: bytes, join: bool) -> bytes:
        return b""

    def merge_final(self, peer: bytes, payload: bytes) -> None:
        return None
