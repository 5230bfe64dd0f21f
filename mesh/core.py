"""The sans-I/O protocol core: SWIM with Lifeguard, broadcasts and anti-entropy.

Nothing here touches a socket, a clock or trio. The owner (a driver, or a simulator)
feeds it ``(now, source, bytes)`` and timer ticks, and collects what to send and what
happened::

    core.receive_datagram(now, source, data)
    core.tick(now)                      # at core.next_deadline()
    for addr, data in core.datagrams_to_send(): ...
    for request in core.streams_to_open(): ...      # TCP exchanges the driver runs
    for event in core.events(): ...

Everything a peer sends that is wrong is dropped and counted (``core.stats.drops``),
never raised; a caller misusing the API gets a :class:`~mesh.errors.LocalProtocolError`.
"""

from __future__ import annotations

import heapq
import random
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from mesh import wire
from mesh.awareness import Awareness
from mesh.config import META_MAX, MeshConfig
from mesh.delegate import Delegate
from mesh.errors import DropReason, LocalProtocolError, MetaTooLarge
from mesh.events import (
    BroadcastDelivered,
    Event,
    MemberAlive,
    MemberDead,
    MemberJoined,
    MemberLeft,
    MemberRemoved,
    MemberSuspect,
    MemberUpdated,
)
from mesh.member import Address, Member, MemberState
from mesh.queue import BroadcastQueue
from mesh.security import Seal
from mesh.stats import Stats
from mesh.suspicion import Suspicion, suspicion_bounds
from mesh.table import MemberTable


class StreamKind(Enum):
    """Why a TCP exchange is opened."""

    JOIN = "join"
    PUSH_PULL = "push_pull"
    RECONNECT = "reconnect"
    USER = "user"
    PING = "ping"


@dataclass(frozen=True, slots=True)
class StreamRequest:
    """A TCP exchange for the driver to run: connect to ``addr``, send ``payload`` as
    one frame; for push-pull kinds read one reply frame, hand it to
    :meth:`MeshCore.stream_reply_received`, and send back the frame that returns."""

    id: int
    kind: StreamKind
    addr: Address
    peer: bytes | None
    """The expected peer key, or None when dialling a seed address."""
    payload: bytes

    @property
    def expects_reply(self) -> bool:
        """Whether the initiator waits for a reply frame."""
        return self.kind is not StreamKind.USER


@dataclass(slots=True)
class _Probe:
    target: bytes
    start: float
    nacks_expected: int = 0
    nacks: int = 0
    relays: tuple[bytes, ...] = ()


@dataclass(slots=True)
class _Relay:
    requester: bytes
    requester_addr: Address
    seq: int
    nack: bool
    target: bytes


_Timer = tuple[float, int, Callable[[float], None]]
"""(when, tie-breaking sequence, action): tuples keep the heap's comparisons in C."""


class MeshCore:
    """One node's protocol state machine."""

    def __init__(
        self,
        *,
        key: bytes,
        addr: Address,
        config: MeshConfig,
        seal: Seal,
        delegate: Delegate,
        rng: random.Random,
        now: float,
        meta: bytes = b"",
    ) -> None:
        self._check_meta(meta)
        self.key = key
        self.config = config
        self.seal = seal
        self.delegate = delegate
        self.rng = rng
        self.stats = Stats()
        self.awareness = Awareness(config.awareness_max_multiplier)
        self.table = MemberTable(Member(key, addr, 0, MemberState.ALIVE, meta, now), rng)
        self.queue = BroadcastQueue()
        self.leaving = False
        self.leave_sent = False
        """Whether the leave announcement has been sent its full number of times."""
        self._suspicions: dict[bytes, Suspicion] = {}
        self._pending: dict[int, _Probe | _Relay] = {}
        self._seen: OrderedDict[bytes, float] = OrderedDict()
        self._timers: list[_Timer] = []
        self._timer_seq = 0
        self._seq = rng.randrange(1 << 31)
        self._stream_seq = 0
        self._out: list[tuple[Address, bytes]] = []
        self._streams: list[StreamRequest] = []
        self._events: list[Event] = []
        self._handlers = self._handler_table()
        # Bytes of messages one sealed datagram of at most `mtu` bytes can carry.
        self._room = config.mtu - seal.overhead - wire.COMPOUND_HEADER_MAX
        self._push_pull_generation = 0
        self._news_pending = False
        self._queue_alive()
        self._start_timers(now)

    # ------------------------------------------------------------------ outputs

    def datagrams_to_send(self) -> list[tuple[Address, bytes]]:
        """Sealed datagrams to send, with their destination; empties the list."""
        out, self._out = self._out, []
        return out

    def streams_to_open(self) -> list[StreamRequest]:
        """TCP exchanges to run; empties the list."""
        out, self._streams = self._streams, []
        return out

    def events(self) -> list[Event]:
        """What happened since the last call; empties the list."""
        out, self._events = self._events, []
        return out

    def next_deadline(self) -> float:
        """When :meth:`tick` must next be called."""
        return self._timers[0][0]

    # ------------------------------------------------------------------ state

    @property
    def incarnation(self) -> int:
        """This node's incarnation number."""
        return self.table.local.incarnation

    @property
    def addr(self) -> Address:
        """This node's advertised address."""
        return self.table.local.addr

    @property
    def meta(self) -> bytes:
        """This node's metadata."""
        return self.table.local.meta

    def members(self) -> list[Member]:
        """Every known member, this node included."""
        return list(self.table)

    def member(self, key: bytes) -> Member | None:
        """The record of ``key``."""
        return self.table.get(key)

    def max_user_datagram(self) -> int:
        """Largest application payload that still travels in a datagram."""
        return self._room - wire.USER_ENVELOPE

    # ------------------------------------------------------------------ commands

    def set_meta(self, now: float, meta: bytes) -> None:
        """Publish new metadata (bumps this node's incarnation)."""
        self._check_meta(meta)
        if self.leaving:
            raise LocalProtocolError("this node is leaving; its metadata can no longer change")
        self._bump(self.incarnation + 1, meta=meta, push=self.config.eager_push)

    def broadcast(self, now: float, payload: bytes, topic: str = "") -> bytes:
        """Send ``payload`` once to every member, or with a ``topic`` only to the members
        the delegate puts in its audience (``in_audience``); returns the broadcast id."""
        if len(topic) > wire.MAX_TOPIC:
            raise LocalProtocolError(f"a topic is at most {wire.MAX_TOPIC} characters")
        bid = self.rng.randbytes(wire.ID_LEN)
        self._remember(now, bid)
        self.stats.broadcasts_sent += 1
        self._spread_user(now, bid, self.key, payload, (), topic)
        return bid

    def join(self, now: float, seeds: Iterable[Address]) -> list[StreamRequest]:
        """Start a state exchange with each seed; the driver runs them."""
        started = []
        for addr in seeds:
            if addr == self.addr:
                continue
            started.append(self._open_push_pull(StreamKind.JOIN, addr, None))
        if not started:
            raise LocalProtocolError("no seed to join through (only this node's address)")
        return started

    def leave(self, now: float) -> None:
        """Announce a graceful leave: gossip it and push it to a few members at once."""
        if self.leaving:
            return
        self.leaving = True
        local = self.table.local
        msg = wire.Dead(local.incarnation, self.key, self.key)
        self.queue.push(wire.encode(msg), key=self.key, on_done=self._leave_done)
        for member in self.table.sample(2 * self.config.gossip_nodes, _is_reachable, (self.key,)):
            self._send(member, [wire.encode(msg)])

    def _leave_done(self) -> None:
        self.leave_sent = True

    def forget(self, now: float, key: bytes) -> None:
        """Remove a member whose membership was revoked: it is dropped from the table, its
        datagrams stop opening (the caller's ``is_member`` must now refuse it) and gossip
        about it is ignored from then on."""
        member = self.table.get(key)
        if member is None or key == self.key:
            return
        self.table.remove(key)
        self._suspicions.pop(key, None)
        self.seal.forget(key)
        self._events.append(MemberRemoved(member))

    def assume_members(self, now: float, members: Iterable[Member]) -> None:
        """Start from a known, converged view (simulations of a running fleet); emits
        no events and queues no broadcasts."""
        self.table.put_many([m for m in members if m.key != self.key])
        self._schedule_push_pull(now)

    # ------------------------------------------------------------------ timers

    def _at(self, when: float, action: Callable[[float], None]) -> None:
        self._timer_seq += 1
        heapq.heappush(self._timers, (when, self._timer_seq, action))

    def tick(self, now: float) -> None:
        """Run every timer due at ``now``."""
        timers = self._timers
        while timers and timers[0][0] <= now:
            heapq.heappop(timers)[2](now)

    def _start_timers(self, now: float) -> None:
        cfg = self.config
        # Random phases keep a fleet started at once from probing in lock-step.
        self._at(now + self.rng.uniform(0, cfg.probe_interval), self._probe_round)
        self._at(now + self.rng.uniform(0, cfg.gossip_interval), self._gossip_round)
        self._schedule_push_pull(now)
        self._at(now + cfg.reconnect_interval, self._reconnect_round)
        self._at(now + 1.0, self._reap_round)

    # ------------------------------------------------------------------ probing

    def _probe_round(self, now: float) -> None:
        interval = self._scaled(self.config.probe_interval)
        target = self.table.next_probe()
        if target is not None and not self.leaving:
            seq = self._next_seq()
            self._pending[seq] = _Probe(target.key, now)
            msgs = [wire.encode(wire.Ping(seq, target.key))]
            if target.state is MemberState.SUSPECT and self.config.lifeguard:
                # Lifeguard's buddy system: tell the suspect so it can refute.
                msgs.append(wire.encode(wire.Suspect(target.incarnation, target.key, self.key)))
            self._send(target, msgs)
            self.stats.probes += 1
            self._at(
                now + self._scaled(self.config.probe_timeout), lambda t: self._probe_timeout(t, seq)
            )
            self._at(now + interval, lambda t: self._probe_end(t, seq))
        self._at(now + interval, self._probe_round)

    def _scaled(self, timeout: float) -> float:
        return self.awareness.scale(timeout) if self.config.lifeguard else timeout

    def _probe_timeout(self, now: float, seq: int) -> None:
        probe = self._pending.get(seq)
        if not isinstance(probe, _Probe):
            return
        target = self.table.get(probe.target)
        if target is None:
            return
        relays = self.table.sample(
            self.config.indirect_checks,
            lambda m: m.state is MemberState.ALIVE,
            (self.key, target.key),
        )
        nack = self.config.lifeguard
        msg = wire.encode(wire.IndirectPing(seq, target.key, target.addr, nack))
        for relay in relays:
            self._send(relay, [msg])
        probe.nacks_expected = len(relays) if nack else 0
        probe.relays = tuple(r.key for r in relays)
        self.stats.indirect_probes += len(relays)
        if self.config.tcp_fallback_ping:
            # UDP may be lossy or filtered where TCP gets through (as memberlist does).
            ping = wire.encode(wire.Ping(seq, target.key))
            self._open_stream(StreamKind.PING, target.addr, target.key, ping)

    def _probe_end(self, now: float, seq: int) -> None:
        probe = self._pending.pop(seq, None)
        if not isinstance(probe, _Probe):
            return  # acknowledged in time
        self.stats.probe_failures += 1
        if self.config.lifeguard:
            missed = probe.nacks_expected - probe.nacks
            self.awareness.apply(missed if probe.nacks_expected else 1)
        target = self.table.get(probe.target)
        if target is not None and target.reachable:
            # Also when already suspect: our failed probe is an independent confirmation.
            self._on_suspect(now, wire.Suspect(target.incarnation, target.key, self.key))

    def _on_ack(self, now: float, sender: bytes, seq: int) -> None:
        pending = self._pending.get(seq)
        if pending is None:
            self.stats.late_acks += 1
            return
        # Only the probed member (or a relay we asked) may answer for it.
        expected = (
            (pending.target,) if isinstance(pending, _Relay) else (pending.target, *pending.relays)
        )
        if sender not in expected:
            self.stats.drop(DropReason.UNEXPECTED)
            return
        del self._pending[seq]
        if isinstance(pending, _Relay):
            ack = wire.encode(wire.Ack(pending.seq))
            self._send_to(pending.requester, pending.requester_addr, [ack])
            return
        self.stats.observe_rtt(now - pending.start)
        if self.config.lifeguard:
            self.awareness.apply(-1)

    def _on_nack(self, seq: int) -> None:
        probe = self._pending.get(seq)
        if isinstance(probe, _Probe):
            probe.nacks += 1

    def _on_ping(self, sender: bytes, source: Address, msg: wire.Ping) -> None:
        if msg.target != self.key:
            self.stats.drop(DropReason.UNEXPECTED)
            return
        self._send_to(sender, source, [wire.encode(wire.Ack(msg.seq))])

    def _on_indirect_ping(
        self, now: float, sender: bytes, source: Address, msg: wire.IndirectPing
    ) -> None:
        if msg.target == self.key:
            self._send_to(sender, source, [wire.encode(wire.Ack(msg.seq))])
            return
        seq = self._next_seq()
        self._pending[seq] = _Relay(sender, source, msg.seq, msg.nack, msg.target)
        self._send_to(msg.target, msg.addr, [wire.encode(wire.Ping(seq, msg.target))])

        def expire(_: float) -> None:
            relay = self._pending.pop(seq, None)
            if isinstance(relay, _Relay) and relay.nack:
                self._send_to(
                    relay.requester, relay.requester_addr, [wire.encode(wire.Nack(relay.seq))]
                )

        self._at(now + self.config.probe_timeout, expire)

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & wire.MAX_U32
        return self._seq

    # ------------------------------------------------------------------ membership transitions

    def _on_alive(self, now: float, msg: wire.Alive) -> None:
        if msg.node == self.key:
            local = self.table.local
            if msg.incarnation > local.incarnation or (
                msg.incarnation == local.incarnation
                and (msg.meta, msg.addr) != (local.meta, local.addr)
            ):
                # Someone speaks for us with a state we never had: assert our own.
                self._refute(now, msg.incarnation)
            return
        if not self.delegate.is_member(msg.node):
            self.stats.drop(DropReason.NOT_MEMBER)
            return
        old = self.table.get(msg.node)
        if old is not None and msg.incarnation <= old.incarnation:
            return
        new = Member(msg.node, msg.addr, msg.incarnation, MemberState.ALIVE, msg.meta, now)
        self.table.put(new)
        self._suspicions.pop(msg.node, None)
        self.queue.push(wire.encode(msg), key=msg.node)
        if old is None or old.state >= MemberState.DEAD:
            self._events.append(MemberJoined(new))
        elif old.state is MemberState.SUSPECT:
            self.stats.refutations_seen += 1
            self._events.append(MemberAlive(new))
        elif (old.meta, old.addr) != (new.meta, new.addr):
            self._events.append(MemberUpdated(new))
            self._news(now)

    def _on_suspect(self, now: float, msg: wire.Suspect) -> None:
        if msg.node == self.key:
            self._accused(now, msg.incarnation, msg.sender)
            return
        old = self.table.get(msg.node)
        if old is None or msg.incarnation < old.incarnation:
            return
        if old.state is MemberState.SUSPECT:
            suspicion = self._suspicions.get(msg.node)
            if suspicion is not None and suspicion.confirm(msg.sender):
                self.queue.push(wire.encode(msg), key=msg.node)
                self._at(
                    suspicion.deadline, lambda t: self._suspicion_expired(t, msg.node, suspicion)
                )
            return
        if old.state is not MemberState.ALIVE:
            return
        new = old.evolve(state=MemberState.SUSPECT, incarnation=msg.incarnation, since=now)
        self.table.put(new)
        self.stats.suspicions += 1
        self.queue.push(wire.encode(msg), key=msg.node)
        self._events.append(MemberSuspect(new))
        self._start_suspicion(now, new, msg.sender)
        if self.config.lifeguard and msg.sender == self.key:
            self._send(new, [wire.encode(msg)])

    def _start_suspicion(self, now: float, member: Member, sender: bytes) -> None:
        cfg = self.config
        n = self.table.reachable
        low, high = suspicion_bounds(
            n, cfg.probe_interval, cfg.suspicion_mult, cfg.suspicion_max_timeout_mult
        )
        if cfg.lifeguard:
            expected = max(0, int(cfg.suspicion_mult) - 2)
            if n - 2 < expected:
                expected = 0
        else:
            expected, high = 0, low
        suspicion = Suspicion(now, expected, low, high, {sender})
        self._suspicions[member.key] = suspicion
        self._at(suspicion.deadline, lambda t: self._suspicion_expired(t, member.key, suspicion))

    def _suspicion_expired(self, now: float, key: bytes, suspicion: Suspicion) -> None:
        if self._suspicions.get(key) is not suspicion or suspicion.deadline > now:
            return
        member = self.table.get(key)
        if member is None or member.state is not MemberState.SUSPECT:
            return
        self._on_dead(now, wire.Dead(member.incarnation, key, self.key))

    def _on_dead(self, now: float, msg: wire.Dead) -> None:
        if msg.node == self.key:
            self._accused(now, msg.incarnation, msg.sender)
            return
        old = self.table.get(msg.node)
        if old is None or msg.incarnation < old.incarnation:
            return
        if old.state >= MemberState.DEAD:
            return
        left = msg.sender == msg.node
        state = MemberState.LEFT if left else MemberState.DEAD
        new = old.evolve(state=state, incarnation=msg.incarnation, since=now)
        self.table.put(new)
        self._suspicions.pop(msg.node, None)
        self.queue.push(wire.encode(msg), key=msg.node)
        if left:
            self._events.append(MemberLeft(new))
        else:
            self.stats.deaths += 1
            self._events.append(MemberDead(new))

    def _accused(self, now: float, incarnation: int, accuser: bytes) -> None:
        """Someone suspects us or declared us dead."""
        if self.leaving:
            return  # refuting would undo our own leave announcement
        if incarnation >= self.incarnation:
            self._refute(now, incarnation, accuser)
        elif (m := self.table.get(accuser)) is not None and accuser != self.key:
            # The accuser has not heard our refutation (its gossip is spent): tell it.
            local = self.table.local
            alive = wire.Alive(local.incarnation, self.key, local.addr, local.meta)
            self._send(m, [wire.encode(alive)])

    def _refute(self, now: float, incarnation: int, accuser: bytes | None = None) -> None:
        self.stats.refutations += 1
        if self.config.lifeguard:
            self.awareness.apply(1)
        # Push the refutation at once, to the accuser and a few others, rather than wait
        # for gossip rounds: in a small mesh the retransmit limit is only 2 or 4.
        self._bump(max(self.incarnation, incarnation) + 1, push=True, first=accuser)

    def _bump(
        self,
        incarnation: int,
        meta: bytes | None = None,
        *,
        push: bool = False,
        first: bytes | None = None,
    ) -> None:
        local = self.table.local
        self.table.put(
            local.evolve(incarnation=incarnation, meta=local.meta if meta is None else meta)
        )
        self._queue_alive(push, first)

    def _queue_alive(self, push: bool = False, first: bytes | None = None) -> None:
        local = self.table.local
        encoded = wire.encode(wire.Alive(local.incarnation, self.key, local.addr, local.meta))
        if push:
            self._push(encoded, (self.key,), first)
        self.queue.push(encoded, key=self.key)

    def _push(self, encoded: bytes, exclude: tuple[bytes, ...], first: bytes | None = None) -> None:
        """Send ``encoded`` at once to ``gossip_nodes`` reachable members (``first``, if
        known, ahead of them). Call it before queueing ``encoded``: a queued copy would be
        piggybacked on these very datagrams."""
        targets = self.table.sample(self.config.gossip_nodes, _is_reachable, exclude)
        if first is not None and first not in exclude and (m := self.table.get(first)):
            targets = [m, *(t for t in targets if t.key != first)]
        for member in targets:
            self._send(member, [encoded])

    @staticmethod
    def _check_meta(meta: bytes) -> None:
        if len(meta) > META_MAX:
            raise MetaTooLarge(len(meta), META_MAX)

    # ------------------------------------------------------------------ broadcasts

    def _gossip_round(self, now: float) -> None:
        self._at(now + self.config.gossip_interval, self._gossip_round)
        self._gossip(now)

    def _news(self, now: float) -> None:
        """Someone's new metadata was queued: gossip it on soon (``news_delay``)."""
        if self.config.news_delay and not self._news_pending:
            self._news_pending = True
            self._at(now + self.config.news_delay, self._news_round)

    def _news_round(self, now: float) -> None:
        self._news_pending = False
        self._gossip(now)

    def _gossip(self, now: float) -> None:
        if not self.queue:
            return
        horizon = now - self.config.gossip_to_the_dead

        def target(m: Member) -> bool:
            return m.reachable or (m.state is MemberState.DEAD and m.since > horizon)

        for member in self.table.sample(self.config.gossip_nodes, target, (self.key,)):
            if not self._send(member, []):
                break

    def _spread_user(
        self,
        now: float,
        bid: bytes,
        origin: bytes,
        payload: bytes,
        exclude: tuple[bytes, ...],
        topic: str,
    ) -> None:
        carried = b"" if origin == self.key else origin
        encoded = wire.encode(wire.User(bid, carried, payload, topic))
        target: Callable[[Member], bool] = _is_reachable
        if topic:
            in_audience = self.delegate.in_audience

            def target(m: Member) -> bool:
                return m.reachable and in_audience(m.key, topic)

        fanout = self.table.sample(self.config.gossip_nodes, target, (self.key, *exclude))
        if len(encoded) > self._room:
            # Too large for a datagram: push it over TCP; anti-entropy repairs misses.
            stream = wire.encode(wire.UserStream(bid, carried, payload, topic))
            for member in fanout:
                self._open_stream(StreamKind.USER, member.addr, member.key, stream)
            return
        if self.config.eager_push:
            # Before queueing: a queued copy would be piggybacked on this very datagram.
            for member in fanout:
                self._send(member, [encoded])
        self.queue.push(encoded, topic=topic)

    def _on_user(self, now: float, sender: bytes, msg: wire.User | wire.UserStream) -> None:
        if msg.id in self._seen:
            self.stats.duplicate_broadcasts += 1
            return
        self._remember(now, msg.id)
        self.stats.broadcasts_delivered += 1
        origin = msg.origin or sender  # empty: the sender created it
        self._events.append(BroadcastDelivered(origin, msg.id, msg.payload, msg.topic))
        self._spread_user(now, msg.id, origin, msg.payload, (sender, origin), msg.topic)

    def _remember(self, now: float, bid: bytes) -> None:
        self._seen[bid] = now + self.config.broadcast_dedup

    # ------------------------------------------------------------------ datagrams

    def _send(self, member: Member, messages: list[bytes]) -> bool:
        return self._send_to(member.key, member.addr, messages)

    def _send_to(self, key: bytes, addr: Address, messages: list[bytes]) -> bool:
        """Seal ``messages`` plus piggybacked broadcasts for ``key``; False if empty."""
        budget = self._room - sum(len(m) for m in messages)
        limit = self.config.retransmit_limit(self.table.reachable)
        extra = self.queue.take(budget, 0, limit, self._wants(key)) if budget > 0 else []
        if not messages and not extra:
            return False
        payload = wire.compound([*messages, *extra])
        data = self.seal.seal(key, payload)
        self._out.append((addr, data))
        self.stats.sent(len(data), [*messages, *extra])
        return True

    def _wants(self, key: bytes) -> Callable[[str], bool]:
        in_audience = self.delegate.in_audience
        return lambda topic: in_audience(key, topic)

    def receive_datagram(self, now: float, source: Address, data: bytes) -> None:
        """Handle one datagram from ``source``. Bad input is dropped and counted."""
        self.stats.received(len(data))
        opened = self.seal.open(data)
        if isinstance(opened, DropReason):
            self.stats.drop(opened)
            return
        decoded = wire.decode_compound(opened.payload, self.config.max_frame)
        if isinstance(decoded, DropReason):
            self.stats.drop(decoded)
            return
        for _ in range(decoded.unknown):
            self.stats.drop(DropReason.UNKNOWN_TYPE)
        sender = opened.sender
        for msg in decoded.messages:
            self.stats.message_in(msg)
            self._dispatch(now, sender, source, msg)

    def _dispatch(self, now: float, sender: bytes, source: Address, msg: wire.Message) -> None:
        # A table rather than a match: this runs for every message of every datagram.
        handler = self._handlers.get(type(msg))
        if handler is None:
            # Stream-only messages have no business in a datagram.
            self.stats.drop(DropReason.UNEXPECTED)
            return
        handler(now, sender, source, msg)

    def _handler_table(self) -> dict[type, Callable[[float, bytes, Address, Any], None]]:
        return {
            wire.Alive: lambda now, _s, _a, m: self._on_alive(now, m),
            wire.Suspect: lambda now, _s, _a, m: self._on_suspect(now, m),
            wire.Dead: lambda now, _s, _a, m: self._on_dead(now, m),
            wire.Ping: lambda _n, sender, source, m: self._on_ping(sender, source, m),
            wire.Ack: lambda now, sender, _a, m: self._on_ack(now, sender, m.seq),
            wire.IndirectPing: self._on_indirect_ping,
            wire.Nack: lambda _n, _s, _a, m: self._on_nack(m.seq),
            wire.User: lambda now, sender, _a, m: self._on_user(now, sender, m),
        }

    # ------------------------------------------------------------------ streams (TCP)

    def _open_stream(
        self, kind: StreamKind, addr: Address, peer: bytes | None, payload: bytes
    ) -> StreamRequest:
        self._stream_seq += 1
        request = StreamRequest(self._stream_seq, kind, addr, peer, payload)
        self._streams.append(request)
        self.stats.streams_opened += 1
        return request

    def _open_push_pull(self, kind: StreamKind, addr: Address, peer: bytes | None) -> StreamRequest:
        join = kind is StreamKind.JOIN
        app = self.delegate.local_state(peer or b"", join)
        payload = wire.encode(wire.PushPull(join, self._table_rows(), app))
        return self._open_stream(kind, addr, peer, payload)

    def _table_rows(self) -> list[Member]:
        return list(self.table)

    def _schedule_push_pull(self, now: float) -> None:
        """First exchange at a random point of one (size-scaled) period, as memberlist
        staggers it: a fleet started at once does not exchange all at once."""
        if self.config.push_pull_interval <= 0:
            return
        self._push_pull_generation += 1
        generation = self._push_pull_generation
        first = self.rng.uniform(0, self.config.push_pull_period(self.table.reachable))
        self._at(now + first, lambda t: self._push_pull_round(t, generation))

    def _push_pull_round(self, now: float, generation: int) -> None:
        if generation != self._push_pull_generation:
            return
        period = self.config.push_pull_period(self.table.reachable)
        self._at(now + period, lambda t: self._push_pull_round(t, generation))
        if self.leaving:
            return
        for member in self.table.sample(1, lambda m: m.state is MemberState.ALIVE, (self.key,)):
            self._open_push_pull(StreamKind.PUSH_PULL, member.addr, member.key)

    def _reconnect_round(self, now: float) -> None:
        self._at(now + self.config.reconnect_interval, self._reconnect_round)
        if self.leaving or self.table.count(MemberState.DEAD) == 0:
            return
        horizon = now - self.config.reconnect_timeout

        def failed(m: Member) -> bool:
            return m.state is MemberState.DEAD and m.since > horizon

        for member in self.table.sample(1, failed, (self.key,)):
            self.stats.reconnects += 1
            self._open_push_pull(StreamKind.RECONNECT, member.addr, member.key)

    def _reap_round(self, now: float) -> None:
        self._at(now + 1.0, self._reap_round)
        while self._seen:
            bid, expires = next(iter(self._seen.items()))
            if expires > now:
                break
            del self._seen[bid]
        if self.table.count(MemberState.DEAD) + self.table.count(MemberState.LEFT) == 0:
            return
        horizon = now - self.config.dead_retention
        gone = [m.key for m in self.table if m.state >= MemberState.DEAD and m.since < horizon]
        for key in gone:
            self.table.remove(key)

    def stream_request_received(self, now: float, peer: bytes, data: bytes) -> bytes | None:
        """A peer opened a TCP exchange with one frame; returns the reply frame, if any."""
        msg = wire.decode_one(data, self.config.max_frame)
        if isinstance(msg, DropReason):
            self.stats.drop(msg)
            return None
        match msg:
            case wire.PushPull(join, rows, app):
                self.stats.push_pulls_in += 1
                self._merge(now, peer, rows)
                reply_app = self.delegate.merge_remote_state(peer, app, join)
                return wire.encode(wire.PushPull(False, self._table_rows(), reply_app))
            case wire.UserStream():
                self._on_user(now, peer, msg)
                return None
            case wire.Ping(seq, target) if target == self.key:
                return wire.encode(wire.Ack(seq))
        self.stats.drop(DropReason.UNEXPECTED)
        return None

    def stream_final_received(self, now: float, peer: bytes, data: bytes) -> None:
        """The initiator's last frame of a state exchange."""
        msg = wire.decode_one(data, self.config.max_frame)
        if isinstance(msg, wire.PushPullFinal):
            self.delegate.merge_final(peer, msg.app)
        else:
            self.stats.drop(msg if isinstance(msg, DropReason) else DropReason.UNEXPECTED)

    def stream_reply_received(
        self, now: float, request: StreamRequest, peer: bytes, data: bytes | None
    ) -> bytes | None:
        """The reply to a push-pull we opened (None: the exchange failed). Returns the
        final frame to send back, or None when there is nothing to send."""
        if data is None:
            self.stats.streams_failed += 1
            return None
        msg = wire.decode_one(data, self.config.max_frame)
        if request.kind is StreamKind.PING:
            if isinstance(msg, wire.Ack) and request.peer == peer:
                self._on_ack(now, peer, msg.seq)
            else:
                self.stats.drop(msg if isinstance(msg, DropReason) else DropReason.UNEXPECTED)
            return None
        if not isinstance(msg, wire.PushPull):
            self.stats.drop(msg if isinstance(msg, DropReason) else DropReason.UNEXPECTED)
            return None
        join = request.kind is StreamKind.JOIN
        self._merge(now, peer, msg.members)
        final = self.delegate.merge_reply(peer, msg.app, join)
        if join:
            self.stats.joins += 1
        return wire.encode(wire.PushPullFinal(final))

    def _merge(self, now: float, peer: bytes, rows: Iterable[wire.MemberEntry | Member]) -> None:
        # As memberlist: a remote "dead" becomes a local suspicion, so a live member gets
        # the chance to refute instead of being declared dead on hearsay.
        table = self.table
        for row in rows:
            old = table.get(row.key)
            # Fast path for large meshes: most rows tell us nothing new.
            if (
                old is not None
                and row.key != self.key
                and (
                    row.incarnation < old.incarnation
                    or (row.incarnation == old.incarnation and row.state <= old.state)
                )
            ):
                continue
            match row.state:
                case MemberState.ALIVE:
                    self._on_alive(now, wire.Alive(row.incarnation, row.key, row.addr, row.meta))
                case MemberState.LEFT:
                    self._on_dead(now, wire.Dead(row.incarnation, row.key, row.key))
                case _:
                    if row.key not in self.table and row.key != self.key:
                        continue
                    self._on_suspect(now, wire.Suspect(row.incarnation, row.key, peer))


def _is_reachable(member: Member) -> bool:
    return member.reachable
