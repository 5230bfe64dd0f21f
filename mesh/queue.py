"""The transmit-limited broadcast queue (as memberlist's queue.go).

Each broadcast is sent a limited number of times (``retransmit_limit``); the fewest-sent
go first and, among equals, the newest; a newer broadcast about the same key (a member's
state) invalidates the older one still queued.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

_MIN_MESSAGE = 8
"""No message is smaller: stop filling below this much room."""
_MAX_MISSES = 16
"""Give up filling after this many queued messages that did not fit: a long queue must
not make every datagram cost a scan of all of it."""
_MAX_SCAN = 256
"""Look at no more queued messages than this per datagram (topic messages the recipient
is not in the audience of are passed over, and must not make a scan unbounded)."""


@dataclass(slots=True, eq=False)
class _Item:
    key: bytes | None
    data: bytes
    order: int
    transmits: int = 0
    on_done: Callable[[], None] | None = field(default=None)
    topic: str = ""


class BroadcastQueue:
    """Queued encoded messages waiting to be piggybacked or gossiped."""

    def __init__(self) -> None:
        # transmit count -> {order: item}; dicts keep insertion (= age) order.
        self._buckets: dict[int, dict[int, _Item]] = {}
        self._by_key: dict[bytes, _Item] = {}
        self._order = 0
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def push(
        self,
        data: bytes,
        key: bytes | None = None,
        on_done: Callable[[], None] | None = None,
        topic: str = "",
    ) -> None:
        """Queue an encoded message; ``key`` names what it is about (invalidation);
        ``topic`` limits who it may be sent to (see :meth:`take`)."""
        if key is not None and (old := self._by_key.pop(key, None)) is not None:
            self._remove(old)
        self._order += 1
        item = _Item(key, data, self._order, 0, on_done, topic)
        self._buckets.setdefault(0, {})[item.order] = item
        if key is not None:
            self._by_key[key] = item
        self._len += 1

    def _remove(self, item: _Item) -> None:
        bucket = self._buckets[item.transmits]
        del bucket[item.order]
        if not bucket:
            del self._buckets[item.transmits]
        self._len -= 1

    def take(
        self,
        budget: int,
        overhead: int,
        limit: int,
        wants: Callable[[str], bool] | None = None,
    ) -> list[bytes]:
        """Messages fitting in ``budget`` bytes (each costing ``overhead`` more), fewest
        transmissions first, newest first among equals. Each counts as one transmission;
        one sent ``limit`` times leaves the queue. A message with a topic is taken only
        when ``wants(topic)`` (the recipient is in its audience)."""
        out: list[bytes] = []
        taken: list[_Item] = []
        misses = 0
        scanned = 0
        for transmits in sorted(self._buckets):
            bucket = self._buckets[transmits]
            for item in reversed(bucket.values()):
                if (scanned := scanned + 1) > _MAX_SCAN:
                    break
                if item.topic and (wants is None or not wants(item.topic)):
                    continue
                cost = len(item.data) + overhead
                if cost <= budget:
                    budget -= cost
                    out.append(item.data)
                    taken.append(item)
                elif (misses := misses + 1) >= _MAX_MISSES:
                    break
            if budget < _MIN_MESSAGE + overhead or misses >= _MAX_MISSES or scanned > _MAX_SCAN:
                break
        for item in taken:
            self._remove(item)
            item.transmits += 1
            if item.transmits >= limit:
                if item.key is not None and self._by_key.get(item.key) is item:
                    del self._by_key[item.key]
                if item.on_done is not None:
                    item.on_done()
                continue
            self._buckets.setdefault(item.transmits, {})[item.order] = item
            self._len += 1
        return out

    def prune(self, keep: int) -> None:
        """Drop the most-sent broadcasts until at most ``keep`` remain."""
        for transmits in sorted(self._buckets, reverse=True):
            if self._len <= keep:
                return
            for item in list(self._buckets.get(transmits, {}).values()):
                if self._len <= keep:
                    return
                self._remove(item)
                if item.key is not None and self._by_key.get(item.key) is item:
                    del self._by_key[item.key]

    def clear(self) -> None:
        """Forget everything queued."""
        self._buckets.clear()
        self._by_key.clear()
        self._len = 0
