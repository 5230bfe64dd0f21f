"""Queries: one member asks another something and gets one answer, over TCP.

A query is its own stream exchange between two members (the handshake has proven both):
the asker sends one QUERY frame of at most :data:`QUERY_MAX_REQUEST` bytes, the
responder's :class:`~mesh.delegate.Answerer` answers within ``stream_timeout`` and a
QUERY_REPLY of at most :data:`QUERY_MAX_ANSWER` bytes of answer comes back: ANSWERED,
REFUSED (the answerer said no, or there is none) or BUSY (:data:`MAX_SERVED_QUERIES`
already being answered). A non-member cannot ask: it is refused at the handshake, or -
on a node that takes admissions - anything but an admission request is dropped.

:meth:`mesh.MeshNode.query` is the asking side; every failure reaches the caller as one
:class:`QueryError` whose message is one line and whose ``reason`` says which kind.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from mesh import wire
from mesh.errors import DropReason, MeshError
from mesh.handshake import FRAME_MAC, IsMember
from mesh.handshake import Initiator as _Initiator
from mesh.keys import Identity, fingerprint
from mesh.member import Address
from mesh.streams import open_session, read_frame

__all__ = [
    "MAX_SERVED_QUERIES",
    "QUERY_MAX_ANSWER",
    "QUERY_MAX_REQUEST",
    "QueryError",
]

QUERY_MAX_REQUEST = 4 * 1024
"""Largest QUERY frame payload (the encoded message); the responder drops a larger one
undecoded (``oversized``; the frame itself is read within the stream's ``max_frame``),
and the asker refuses to send one."""

QUERY_MAX_ANSWER = 2 * 1024 * 1024
"""Largest answer an answerer may give; the asker refuses a longer reply frame as soon
as its length prefix arrives."""

MAX_SERVED_QUERIES = 4
"""Queries a node answers at once; more are answered BUSY (and counted ``busy``)."""

_REPLY_OVERHEAD = 16
"""Bytes a QUERY_REPLY message adds to its answer (array, type, status, bin header)."""
REPLY_MAX_FRAME = QUERY_MAX_ANSWER + _REPLY_OVERHEAD + FRAME_MAC
"""The asker's cap on the sealed reply frame."""


class QueryError(MeshError):
    """A query got no answer; ``reason`` is ``unknown`` (not a member this node knows),
    ``unreachable`` (dead, left, no connection, closed), ``timeout``, ``refused``,
    ``busy`` or ``bad_reply``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


async def exchange(
    identity: Identity,
    mesh_id: bytes,
    addr: Address,
    peer: bytes,
    request: bytes,
    is_member: IsMember,
    drop: Callable[[DropReason], None] = lambda _reason: None,
) -> bytes:
    """Run one query exchange with member ``peer`` at ``addr``: connect, handshake, send
    the encoded QUERY ``request``, return the answer; :class:`QueryError` otherwise (what
    the responder sent wrong is also counted through ``drop``). Socket errors
    (``OSError``, ``trio.BrokenResourceError``) are left to the caller."""
    who = f"{fingerprint(peer)} at {addr[0]}:{addr[1]}"
    stream = await trio.open_tcp_stream(*addr)
    async with stream:
        initiator = _Initiator(identity, mesh_id, max_frame=REPLY_MAX_FRAME)
        session = await open_session(stream, initiator, is_member, peer)
        if session is None:
            raise QueryError("unreachable", f"{who} closed the connection during the handshake")
        if isinstance(session, DropReason):
            drop(session)
            raise QueryError("unreachable", f"{who}: handshake refused ({session})")
        await stream.send_all(session.seal_frame(request))
        frame = await read_frame(stream, session)
        if frame is None:
            raise QueryError("unreachable", f"{who} closed the connection without answering")
        if isinstance(frame, DropReason):
            drop(frame)
            raise QueryError("bad_reply", f"{who} sent a bad reply ({frame})")
    msg = wire.decode_one(frame, QUERY_MAX_ANSWER)
    if not isinstance(msg, wire.QueryReply):
        drop(msg if isinstance(msg, DropReason) else DropReason.UNEXPECTED)
        raise QueryError("bad_reply", f"{who} did not answer with a query reply")
    if msg.status is wire.QueryStatus.BUSY:
        raise QueryError("busy", f"{who} is busy answering other queries; try again")
    if msg.status is not wire.QueryStatus.ANSWERED:
        raise QueryError("refused", f"{who} refused the query")
    return msg.app
