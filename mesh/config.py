"""Protocol settings, with the ``lan``, ``wan`` and ``local`` presets.

Every duration is in seconds. The presets follow hashicorp/memberlist's, whose values
come from years of production use; NxMesh adds eager push and reconnection settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

META_MAX = 512
"""Largest member metadata in bytes (it rides every ALIVE message)."""


@dataclass(frozen=True, slots=True)
class MeshConfig:
    """Timings and limits of the membership protocol. Use a preset and ``replace``."""

    probe_interval: float = 1.0
    """Time between two failure-detection probes by this node (scaled by local health)."""

    probe_timeout: float = 0.5
    """How long to wait for the direct ACK before asking others (indirect probes).
    Should be about the 99th percentile of round-trip time."""

    indirect_checks: int = 3
    """Members asked to probe for us (ping-req) when the direct probe fails."""

    suspicion_mult: float = 4.0
    """Suspicion timeout = suspicion_mult * max(1, log10(N)) * probe_interval, at least."""

    suspicion_max_timeout_mult: float = 6.0
    """Lifeguard: a fresh suspicion lasts this many times the minimum; independent
    confirmations shrink it towards the minimum."""

    retransmit_mult: int = 4
    """Each broadcast is sent retransmit_mult * ceil(log10(N + 1)) times."""

    gossip_interval: float = 0.2
    """Time between gossip rounds (sending queued broadcasts to gossip_nodes members)."""

    gossip_nodes: int = 3
    """Fan-out: members gossiped to each round, and eagerly pushed to on a new broadcast."""

    gossip_to_the_dead: float = 30.0
    """Keep gossiping to a dead member this long, so it can learn it was declared dead."""

    push_pull_interval: float = 30.0
    """Anti-entropy: full state exchange over TCP with one random member, at this
    interval for up to 32 members and growing with log2(N) above that. 0 disables it."""

    awareness_max_multiplier: int = 8
    """Lifeguard: the local health score ranges 0..this-1; probe interval and timeout
    are multiplied by (score + 1)."""

    reconnect_interval: float = 10.0
    """Every interval, try a state exchange with one random dead (not left) member, so a
    healed partition always re-merges."""

    reconnect_timeout: float = 6 * 3600.0
    """Stop trying to reconnect to a member this long after it was declared dead."""

    dead_retention: float = 24 * 3600.0
    """Forget dead and left members this long after their last state change."""

    stream_timeout: float = 10.0
    """Deadline for one whole TCP exchange (connect, handshake, request, reply)."""

    max_streams: int = 32
    """Concurrent inbound TCP exchanges; more are refused at once."""

    max_frame: int = 64 * 1024 * 1024
    """Largest TCP frame accepted (a full state exchange of a large mesh fits)."""

    mtu: int = 1400
    """Largest datagram sent (after sealing). Larger broadcasts go over TCP."""

    broadcast_dedup: float = 120.0
    """How long the id of a delivered application broadcast is remembered."""

    tcp_fallback_ping: bool = True
    """When a direct probe gets no ACK, also ping the target over TCP (alongside the
    indirect probes): lossy or filtered UDP then does not make a live member suspect."""

    eager_push: bool = True
    """Push a new application broadcast at once to gossip_nodes members - on creation
    and on first receipt - and a node's own new metadata when it sets it, instead of
    waiting for the next gossip round."""

    news_delay: float = 0.05
    """A member's new metadata, heard from someone else, is gossiped on in an extra round
    this long after it arrived rather than at the next regular round; at most one extra
    round is pending, so they are at most 1/news_delay a second. 0 disables them."""

    lifeguard: bool = True
    """Lifeguard refinements (local health, dynamic suspicion, nacks, the suspect told
    directly). Off gives classic SWIM; kept for measurement."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool):
                continue
            if not isinstance(value, int | float) or math.isnan(value) or value < 0:
                raise ValueError(f"{f.name} must be a number >= 0, not {value!r}")
        if self.probe_timeout > self.probe_interval:
            raise ValueError("probe_timeout must not exceed probe_interval")
        if not 512 <= self.mtu <= 65507:
            raise ValueError("mtu must be between 512 and 65507 bytes")
        if not 1024 <= self.max_frame < 2**32:
            raise ValueError("max_frame must be between 1 KiB and 4 GiB")
        for name in ("probe_interval", "gossip_interval", "gossip_nodes", "retransmit_mult"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.awareness_max_multiplier < 1:
            raise ValueError("awareness_max_multiplier must be >= 1")

    @classmethod
    def lan(cls, **overrides: Any) -> MeshConfig:
        """Hosts on one local network: round trips well under 100 ms."""
        return replace(cls(), **overrides)

    @classmethod
    def wan(cls, **overrides: Any) -> MeshConfig:
        """Hosts across wide-area links: slower probes, more patience, more fan-out."""
        base = cls(
            probe_interval=5.0,
            probe_timeout=3.0,
            suspicion_mult=6.0,
            gossip_interval=0.5,
            gossip_nodes=4,
            gossip_to_the_dead=60.0,
            push_pull_interval=60.0,
            reconnect_interval=30.0,
            stream_timeout=30.0,
        )
        return replace(base, **overrides)

    @classmethod
    def local(cls, **overrides: Any) -> MeshConfig:
        """Nodes on one machine (tests, demos): fast detection, little retransmission."""
        base = cls(
            probe_interval=1.0,
            probe_timeout=0.2,
            indirect_checks=1,
            suspicion_mult=3.0,
            retransmit_mult=2,
            gossip_interval=0.1,
            gossip_to_the_dead=15.0,
            push_pull_interval=15.0,
            reconnect_interval=2.0,
            stream_timeout=2.0,
        )
        return replace(base, **overrides)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> MeshConfig:
        """The preset called ``name`` (``lan``, ``wan`` or ``local``)."""
        makers = {"lan": cls.lan, "wan": cls.wan, "local": cls.local}
        if name not in makers:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(makers)}")
        return makers[name](**overrides)

    def retransmit_limit(self, members: int) -> int:
        """How many times a broadcast is sent in a mesh of ``members`` nodes."""
        return self.retransmit_mult * math.ceil(math.log10(members + 1))

    def push_pull_period(self, members: int) -> float:
        """Anti-entropy interval scaled with the mesh size (as memberlist's pushPullScale)."""
        if members <= 32:
            return self.push_pull_interval
        multiplier = math.ceil(math.log2(members) - math.log2(32)) + 1
        return self.push_pull_interval * multiplier
