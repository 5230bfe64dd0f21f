"""Reading a trio stream: exact-length reads and sealed frames (shared by the driver and
the admission client)."""

from __future__ import annotations

import trio

from mesh.errors import DropReason
from mesh.handshake import Session

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
