"""Reading a trio stream: exact-length reads, sealed frames, and the initiator's side of
the handshake (shared by the driver, the admission client and the query client)."""

from __future__ import annotations

import trio

from mesh.errors import DropReason
from mesh.handshake import REPLY_LENGTH, Initiator, IsMember, Session

READ_CHUNK = 65536


class Reader:
    """Exact-length reads over a stream, keeping what arrived beyond them."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    async def exactly(self, n: int) -> bytes | None:
        """``n`` bytes, or None at end of stream."""
        while len(self.buffer) < n:
            data = await self.stream.receive_some(READ_CHUNK)
            if not data:
                return None
            self.buffer += data
        out = bytes(self.buffer[:n])
        del self.buffer[:n]
        return out

    def rest(self) -> bytes:
        out = bytes(self.buffer)
        self.buffer.clear()
        return out


async def read_frame(stream: trio.abc.ReceiveStream, session: Session) -> bytes | DropReason | None:
    """The next frame's payload, why the stream is bad, or None at end of stream."""
    while True:
        frame = session.next_frame()
        if frame is not None:
            return frame
        data = await stream.receive_some(READ_CHUNK)
        if not data:
            return None
        session.feed(bytes(data))


async def open_session(
    stream: trio.abc.Stream,
    initiator: Initiator,
    is_member: IsMember,
    expected_peer: bytes | None = None,
) -> Session | DropReason | None:
    """Handshake on ``stream`` as the side that dialled: the session (fed whatever
    arrived after the reply), why the reply was refused, or None when the responder
    closed the connection first."""
    await stream.send_all(initiator.hello())
    reader = Reader(stream)
    reply = await reader.exactly(REPLY_LENGTH)
    if reply is None:
        return None
    session = initiator.finish(reply, is_member, expected_peer)
    if isinstance(session, DropReason):
        return session
    session.feed(reader.rest())
    return session
