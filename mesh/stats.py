"""Counters for everything an exporter will want; plain numbers, no Prometheus here."""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field

from mesh.errors import DropReason
from mesh.wire import MsgType

RTT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""Upper bounds (seconds) of the probe round-trip histogram; the last bucket is +Inf."""


_TYPE_NAMES = {t.value: t.name.lower() for t in MsgType}
_NAMES: dict[type, str] = {}


def _name(kind: type) -> str:
    name = _NAMES[kind] = kind.__name__.lower()
    return name


@dataclass(slots=True)
class Stats:
    """Monotonic counters of one node's protocol activity."""

    packets_in: int = 0
    packets_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    messages_in: Counter[str] = field(default_factory=Counter)
    messages_out: Counter[str] = field(default_factory=Counter)
    drops: Counter[str] = field(default_factory=Counter)
    probes: int = 0
    probe_failures: int = 0
    indirect_probes: int = 0
    late_acks: int = 0
    suspicions: int = 0
    refutations: int = 0
    refutations_seen: int = 0
    deaths: int = 0
    broadcasts_sent: int = 0
    broadcasts_delivered: int = 0
    duplicate_broadcasts: int = 0
    streams_opened: int = 0
    streams_failed: int = 0
    push_pulls_in: int = 0
    joins: int = 0
    reconnects: int = 0
    rtt_buckets: list[int] = field(default_factory=lambda: [0] * (len(RTT_BUCKETS) + 1))
    rtt_sum: float = 0.0
    rtt_count: int = 0

    def drop(self, reason: DropReason) -> None:
        """Count one dropped datagram, frame or message."""
        self.drops[reason.value] += 1

    def received(self, size: int) -> None:
        """Count one datagram in."""
        self.packets_in += 1
        self.bytes_in += size

    def sent(self, size: int, messages: list[bytes]) -> None:
        """Count one datagram out and its (encoded) messages by type."""
        self.packets_out += 1
        self.bytes_out += size
        out = self.messages_out
        for m in messages:
            # An encoded message is a msgpack array whose first element, the type, is a
            # positive fixint: the type is the second byte.
            out[_TYPE_NAMES.get(m[1], "unknown")] += 1

    def message_in(self, msg: object) -> None:
        """Count one decoded message by type."""
        self.messages_in[_NAMES.get(type(msg)) or _name(type(msg))] += 1

    def observe_rtt(self, seconds: float) -> None:
        """Record one probe round trip."""
        self.rtt_buckets[bisect.bisect_left(RTT_BUCKETS, seconds)] += 1
        self.rtt_sum += seconds
        self.rtt_count += 1
