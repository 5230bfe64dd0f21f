"""The event hub behind the watch stream: changes and member events fanned out to watchers.

The API publishes a ``change`` event for every acknowledged edit it makes; the daemon
publishes what it observes (``document`` updates applied from peers, ``member`` events).
:meth:`EventHub.publish` never blocks: a watcher that falls more than ``buffer`` events
behind is dropped (its stream ends with an ``overflow`` line and the client resyncs).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import trio

__all__ = ["EventHub", "Subscription"]

Event = dict[str, Any]


class Subscription:
    """One watcher's queue. Iterate it; iteration ends when the hub dropped it."""

    def __init__(self, hub: EventHub, buffer: int) -> None:
        self._hub = hub
        self._send, self._receive = trio.open_memory_channel[Event](buffer)
        self.overflowed = False

    def _offer(self, event: Event) -> None:
        try:
            self._send.send_nowait(event)
        except trio.WouldBlock:
            self.overflowed = True
            self.close()
        except trio.ClosedResourceError:
            pass

    def close(self) -> None:
        self._send.close()
        self._hub._subscribers.discard(self)

    async def receive(self) -> Event:
        """The next event; raises :class:`trio.EndOfChannel` once dropped or closed."""
        return await self._receive.receive()

    def pending(self, limit: int) -> list[Event]:
        """Up to ``limit`` events already queued, without waiting (none once closed)."""
        out: list[Event] = []
        while len(out) < limit:
            try:
                out.append(self._receive.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                break
        return out

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        try:
            return await self._receive.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None


class EventHub:
    """Fan-out of events to every current watcher; each event gets a hub-wide ``seq``."""

    def __init__(self, buffer: int = 1024) -> None:
        self.buffer = buffer
        self._subscribers: set[Subscription] = set()
        self._seq = itertools.count(1)
        self.last_seq = 0

    def publish(self, event: Mapping[str, Any]) -> Event:
        """Stamp ``event`` (``seq``, ``at``) and hand it to every watcher, without blocking.

        Call from the trio thread that runs the API.
        """
        self.last_seq = next(self._seq)
        stamped: Event = {**event, "seq": self.last_seq, "at": round(time.time(), 3)}
        for sub in list(self._subscribers):
            sub._offer(stamped)
        return stamped

    def open(self) -> Subscription:
        """A new subscription; close it when done (or use :meth:`subscribe`)."""
        sub = Subscription(self, self.buffer)
        self._subscribers.add(sub)
        return sub

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        sub = self.open()
        try:
            yield sub
        finally:
            sub.close()

    @property
    def watchers(self) -> int:
        return len(self._subscribers)
