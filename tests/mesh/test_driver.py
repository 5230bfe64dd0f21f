"""mesh.driver: MeshNode on real UDP/TCP sockets on 127.0.0.1 - no mocks.

Every wait is bounded. Waits for protocol progress are driven by the nodes' events; the
few counters that have no event are polled in short bounded loops.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mesh import wire
from mesh.config import MeshConfig
from mesh.delegate import StaticMembers
from mesh.driver import JoinError, MeshNode
from mesh.errors import DropReason, MetaTooLarge
from mesh.events import BroadcastDelivered, Event, MemberLeft, MemberUpdated
from mesh.handshake import REPLY_LENGTH, Initiator, Session
from mesh.keys import Identity
from mesh.member import Address, MemberState
from mesh.security import DATAGRAM_OVERHEAD, DatagramSeal

MESH = b"test-mesh"
IDS = [Identity.from_seed(bytes([i + 1]) * 32) for i in range(5)]
MEMBERS = [i.public_key for i in IDS]
OUTSIDER = Identity.from_seed(b"\xee" * 32)
WAIT = 10.0  # generous bound for anything on loopback


def local(**overrides: object) -> MeshConfig:
    # Anti-entropy every 2 s bounds how long a missed gossip can delay convergence.
    return MeshConfig.local(**{"push_pull_interval": 2.0, **overrides})


def make_node(
    identity: Identity, members: StaticMembers | None = None, config: MeshConfig | None = None
) -> MeshNode:
    return MeshNode(
        identity=identity,
        mesh_id=MESH,
        bind=("127.0.0.1", 0),
        config=config or local(),
        delegate=members or StaticMembers(MEMBERS),
        boot_epoch=time.time_ns(),
    )


@dataclass
class Cluster:
    """Running nodes and every event they emit, in one place."""

    nursery: trio.Nursery
    nodes: list[MeshNode] = field(default_factory=list)
    scopes: list[trio.CancelScope] = field(default_factory=list)
    log: list[tuple[int, Event]] = field(default_factory=list)
    changed: trio.Event = field(default_factory=trio.Event)

    async def start(self, node: MeshNode) -> MeshNode:
        scope = trio.CancelScope()
        index = len(self.nodes)

        async def run(task_status: trio.TaskStatus[MeshNode] = trio.TASK_STATUS_IGNORED) -> None:
            with scope:
                await node.run(task_status=task_status)

        await self.nursery.start(run)
        self.nodes.append(node)
        self.scopes.append(scope)
        self.nursery.start_soon(self._collect, index, node.subscribe())
        return node

    async def _collect(self, index: int, events: trio.MemoryReceiveChannel[Event]) -> None:
        async for event in events:
            self.log.append((index, event))
            self.changed.set()

    def stop(self, index: int) -> None:
        self.scopes[index].cancel()

    async def until(self, condition: Callable[[], bool], bound: float = WAIT) -> None:
        """Wait for ``condition``, re-checking it after every event of any node."""
        with trio.fail_after(bound):
            while not condition():
                self.changed = trio.Event()
                await self.changed.wait()

    def events(self, index: int, kind: type) -> list[Event]:
        return [e for i, e in self.log if i == index and isinstance(e, kind)]


@asynccontextmanager
async def cluster() -> AsyncIterator[Cluster]:
    async with trio.open_nursery() as nursery:
        yield Cluster(nursery)
        nursery.cancel_scope.cancel()


def alive_keys(node: MeshNode) -> set[bytes]:
    return {m.key for m in node.members() if m.state is MemberState.ALIVE}


async def five(c: Cluster) -> list[MeshNode]:
    """Five members joined through the first; returns once all see all five alive."""
    nodes = [await c.start(make_node(identity)) for identity in IDS]
    for node in nodes[1:]:
        assert await node.join([nodes[0].addr]) == 1
    await c.until(lambda: all(alive_keys(n) == set(MEMBERS) for n in nodes))
    return nodes


# --- membership on real sockets -----------------------------------------------------


async def test_two_nodes_join_and_see_each_other() -> None:
    async with cluster() as c:
        a = await c.start(make_node(IDS[0]))
        b = await c.start(make_node(IDS[1]))
        assert a.addr[0] == "127.0.0.1"
        assert a.addr[1] != 0
        assert await b.join([a.addr]) == 1
        await c.until(lambda: alive_keys(a) == alive_keys(b) == set(MEMBERS[:2]))
        member = a.member(b.key)
        assert member is not None
        assert member.addr == b.addr
        assert b.stats.joins == 1
        assert a.stats.push_pulls_in >= 1
        assert a.io.send_errors == b.io.send_errors == 0


async def test_five_nodes_converge_and_broadcast_reaches_all() -> None:
    async with cluster() as c:
        nodes = await five(c)
        bid = nodes[3].broadcast(b"hello mesh")

        def delivered(i: int) -> list[Event]:
            return [
                e
                for e in c.events(i, BroadcastDelivered)
                if isinstance(e, BroadcastDelivered) and e.broadcast_id == bid
            ]

        await c.until(lambda: all(delivered(i) for i in (0, 1, 2, 4)))
        for i in (0, 1, 2, 4):
            [event] = delivered(i)  # exactly once
            assert isinstance(event, BroadcastDelivered)
            assert (event.origin, event.payload) == (nodes[3].key, b"hello mesh")
        assert not delivered(3)  # the origin does not deliver to itself


async def test_set_meta_propagates_as_member_updated() -> None:
    async with cluster() as c:
        nodes = await five(c)
        nodes[2].set_meta(b"role=edge")

        def updated(i: int) -> bool:
            return any(
                isinstance(e, MemberUpdated) and e.member.key == nodes[2].key
                for e in c.events(i, MemberUpdated)
            )

        others = (0, 1, 3, 4)
        await c.until(lambda: all(updated(i) for i in others))
        for i in others:
            record = nodes[i].member(nodes[2].key)
            assert record is not None
            assert (record.meta, record.incarnation) == (b"role=edge", 1)


async def test_meta_over_512_bytes_is_refused() -> None:
    async with cluster() as c:
        node = await c.start(make_node(IDS[0]))
        node.set_meta(b"m" * 512)
        with pytest.raises(MetaTooLarge):
            node.set_meta(b"m" * 513)
        assert node.core.meta == b"m" * 512


async def test_leave_is_seen_as_left_not_dead() -> None:
    async with cluster() as c:
        nodes = await five(c)
        await nodes[4].leave()
        c.stop(4)
        leaver = nodes[4].key

        def left(i: int) -> bool:
            return any(
                isinstance(e, MemberLeft) and e.member.key == leaver
                for e in c.events(i, MemberLeft)
            )

        await c.until(lambda: all(left(i) for i in range(4)))
        for i in range(4):
            record = nodes[i].member(leaver)
            assert record is not None
            assert record.state is MemberState.LEFT
            assert nodes[i].stats.deaths == 0


async def test_join_through_nobody_raises() -> None:
    async with cluster() as c:
        node = await c.start(make_node(IDS[0]))
        # A port with nothing listening (ours, closed right away).
        with trio.socket.socket() as probe:
            await probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with pytest.raises(JoinError, match="cannot connect"):
            await node.join([("127.0.0.1", port)])


async def test_outsider_can_neither_join_nor_inject() -> None:
    async with cluster() as c:
        nodes = [await c.start(make_node(identity)) for identity in IDS[:3]]
        for node in nodes[1:]:
            await node.join([nodes[0].addr])
        await c.until(lambda: all(alive_keys(n) == set(MEMBERS[:3]) for n in nodes))

        # It believes everyone is a member; the members do not believe it.
        outsider = await c.start(make_node(OUTSIDER, StaticMembers(allow_all=True)))
        with pytest.raises(JoinError):
            await outsider.join([nodes[0].addr])
        assert nodes[0].stats.drops[DropReason.NOT_MEMBER] >= 1

        # Sealed datagrams (real crypto) from the outsider claiming things.
        seal = DatagramSeal(OUTSIDER, lambda key: True, boot_epoch=1)
        claims: list[wire.Message] = [
            wire.Alive(5, OUTSIDER.public_key, ("127.0.0.1", 9), b""),
            wire.Dead(7, IDS[1].public_key, OUTSIDER.public_key),
            wire.Suspect(7, IDS[2].public_key, OUTSIDER.public_key),
        ]
        before = [n.stats.drops[DropReason.NOT_MEMBER] for n in nodes]
        with trio.socket.socket(type=trio.socket.SOCK_DGRAM) as sock:
            await sock.bind(("127.0.0.1", 0))
            for node in nodes:
                for claim in claims:
                    payload = wire.compound([wire.encode(claim)])
                    await sock.sendto(seal.seal(node.key, payload), node.addr)

        def counted() -> bool:
            return all(
                n.stats.drops[DropReason.NOT_MEMBER] - b >= len(claims)
                for n, b in zip(nodes, before, strict=True)
            )

        await poll(counted)
        for node in nodes:
            assert OUTSIDER.public_key not in {m.key for m in node.members()}
            assert alive_keys(node) == set(MEMBERS[:3])
            assert all(m.incarnation == 0 for m in node.members())


async def poll(condition: Callable[[], bool], bound: float = WAIT) -> None:
    """For counters that have no event: a short, bounded polling loop."""
    with trio.fail_after(bound):
        while not condition():  # noqa: ASYNC110 - no event exists for these counters
            await trio.sleep(0.005)


# --- hostile datagrams --------------------------------------------------------------

MEMBER = IDS[1]  # the identity the tests speak as; not running
OTHER = IDS[2]  # another member, whose name is forged


@asynccontextmanager
async def lone_node(config: MeshConfig | None = None) -> AsyncIterator[MeshNode]:
    async with cluster() as c:
        yield await c.start(make_node(IDS[0], config=config))


class Speaker:
    """A raw UDP socket that speaks as MEMBER with real sealed datagrams."""

    def __init__(self, sock: trio.socket.SocketType, target: MeshNode) -> None:
        self.sock = sock
        self.target = target
        self.seal = DatagramSeal(MEMBER, StaticMembers(MEMBERS).is_member, boot_epoch=1)
        self.seq = 0

    def ping(self) -> bytes:
        self.seq += 1
        payload = wire.compound([wire.encode(wire.Ping(self.seq, self.target.key))])
        return self.seal.seal(self.target.key, payload)

    async def send(self, data: bytes) -> None:
        await self.sock.sendto(data, self.target.addr)

    async def alive_check(self) -> None:
        """A fresh ping must be acknowledged: the node is up, and (one socket, in order)
        it has handled everything sent before."""
        await self.send(self.ping())
        with trio.fail_after(WAIT):
            while True:
                data, _ = await self.sock.recvfrom(65535)
                opened = self.seal.open(data)
                if isinstance(opened, DropReason):
                    continue
                decoded = wire.decode_compound(opened.payload)
                assert not isinstance(decoded, DropReason)
                if wire.Ack(self.seq) in decoded.messages:
                    return


@asynccontextmanager
async def speaker(node: MeshNode) -> AsyncIterator[Speaker]:
    with trio.socket.socket(type=trio.socket.SOCK_DGRAM) as sock:
        await sock.bind(("127.0.0.1", 0))
        yield Speaker(sock, node)


def flip(data: bytes, index: int, bit: int) -> bytes:
    return data[:index] + bytes([data[index] ^ (1 << bit)]) + data[index + 1 :]


def expected_flip(index: int) -> DropReason:
    if index == 0:
        return DropReason.BAD_VERSION
    if index == 1:
        return DropReason.MALFORMED  # kind
    if index < 34:
        return DropReason.NOT_MEMBER  # the sender is now a key nobody admitted
    return DropReason.BAD_MAC  # nonce (incl. direction bit), MAC or ciphertext


datagram_cases = st.one_of(
    st.tuples(st.just("random"), st.binary(max_size=1500)),
    st.tuples(st.just("truncate"), st.integers(0, 10_000)),
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(0, 7)),
    st.tuples(st.just("replay"), st.integers(1, 3)),
    st.tuples(st.just("forge"), st.sampled_from(["member", "outsider", "self"])),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=datagram_cases)
async def test_hostile_datagrams_are_counted_and_change_nothing(case: tuple[Any, ...]) -> None:
    async with lone_node() as node, speaker(node) as s:
        valid = s.ping()
        before = node.stats.drops.copy()
        expected: dict[str, int] = {}
        match case:
            case ("random", data):
                await s.send(data)
            case ("truncate", n):
                cut = n % len(valid)
                await s.send(valid[:cut])
                tag = DropReason.TRUNCATED if cut < DATAGRAM_OVERHEAD else DropReason.BAD_MAC
                expected = {tag: 1}
            case ("flip", index, bit):
                index %= len(valid)
                await s.send(flip(valid, index, bit))
                expected = {expected_flip(index): 1}
            case ("replay", times):
                await s.send(valid)
                for _ in range(times):
                    await s.send(valid)
                expected = {DropReason.REPLAY: times}
            case ("forge", who):
                sender = {
                    "member": OTHER.public_key,
                    "outsider": OUTSIDER.public_key,
                    "self": node.key,
                }[who]
                await s.send(valid[:2] + sender + valid[34:])
                tag = {
                    "member": DropReason.BAD_MAC,
                    "outsider": DropReason.NOT_MEMBER,
                    "self": DropReason.SELF,
                }[who]
                expected = {tag: 1}
        await s.alive_check()
        delta = node.stats.drops - before
        if case[0] == "random":
            assert sum(delta.values()) == 1, delta
        else:
            assert dict(delta) == {str(k): v for k, v in expected.items()}
        # Nothing changed: still alone, at incarnation 0, nothing learnt.
        assert [(m.key, m.incarnation, m.state) for m in node.members()] == [
            (node.key, 0, MemberState.ALIVE)
        ]


# --- hostile streams ----------------------------------------------------------------


async def exchange(addr: Address, data: bytes) -> None:
    """Send ``data``, close our side, and wait until the node closes the connection."""
    stream = await trio.open_tcp_stream(*addr)
    async with stream:
        with trio.fail_after(WAIT):
            try:
                await stream.send_all(data)
                await stream.send_eof()
                while await stream.receive_some(65536):
                    pass
            except trio.BrokenResourceError:
                pass  # the node hung up with our bytes unread (a reset): also a close


async def handshaken(
    addr: Address, initiator: Initiator | None = None
) -> tuple[trio.SocketStream, Session]:
    """A stream with a completed handshake, as MEMBER."""
    stream = await trio.open_tcp_stream(*addr)
    initiator = initiator or Initiator(MEMBER, MESH)
    await stream.send_all(initiator.hello())
    reply = b""
    with trio.fail_after(WAIT):
        while len(reply) < REPLY_LENGTH:
            chunk = await stream.receive_some(REPLY_LENGTH - len(reply))
            assert chunk, "closed during the handshake"
            reply += chunk
    session = initiator.finish(reply, lambda key: True)
    assert isinstance(session, Session)
    return stream, session


async def finish(stream: trio.SocketStream, data: bytes) -> None:
    async with stream:
        with trio.fail_after(WAIT):
            try:
                await stream.send_all(data)
                await stream.send_eof()
                while await stream.receive_some(65536):
                    pass
            except trio.BrokenResourceError:
                pass


def hello(identity: Identity = MEMBER, mesh: bytes = MESH) -> bytes:
    return Initiator(identity, mesh).hello()


stream_cases = st.one_of(
    st.tuples(st.just("random"), st.binary(min_size=1, max_size=600)),
    st.tuples(st.just("hello_flip"), st.integers(2, 10_000), st.integers(0, 7)),
    st.tuples(st.just("hello_cut"), st.integers(1, 10_000)),
    st.tuples(st.just("outsider"), st.none()),
    st.tuples(st.just("wrong_mesh"), st.none()),
    st.tuples(st.just("length"), st.integers(0, 2**32 - 1)),
    st.tuples(st.just("body"), st.binary(min_size=16, max_size=600)),
    st.tuples(st.just("short_body"), st.integers(17, 5000)),
    st.tuples(st.just("payload"), st.binary(max_size=600)),
    st.tuples(st.just("replayed_session"), st.none()),
)


def expected_hello_flip(index: int) -> DropReason:
    at = 2 + len(MESH)
    if index < at:
        return DropReason.WRONG_MESH
    if index < at + 32:
        return DropReason.NOT_MEMBER  # i_static
    return DropReason.BAD_SIGNATURE  # i_eph (signed) or the signature itself


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=stream_cases)
async def test_hostile_streams_are_counted_and_change_nothing(case: tuple[Any, ...]) -> None:
    config = local()
    async with lone_node(config) as node, speaker(node) as s:
        before = node.stats.drops.copy()
        expected: set[DropReason] = set()
        match case:
            case ("random", data):
                await exchange(node.addr, data)
            case ("hello_flip", index, bit):
                good = hello()
                index = 2 + (index - 2) % (len(good) - 2)  # past the length prefix
                await exchange(node.addr, flip(good, index, bit))
                expected = {expected_hello_flip(index)}
            case ("hello_cut", n):
                good = hello()
                await exchange(node.addr, good[: n % len(good)] or good[:1])
                expected = {DropReason.TRUNCATED}
            case ("outsider", _):
                await exchange(node.addr, hello(OUTSIDER))
                expected = {DropReason.NOT_MEMBER}
            case ("wrong_mesh", _):
                await exchange(node.addr, hello(mesh=b"other-mes"))
                expected = {DropReason.WRONG_MESH}
            case ("length", n):
                stream, _ = await handshaken(node.addr)
                await finish(stream, n.to_bytes(4, "big"))
                if n > config.max_frame:
                    expected = {DropReason.OVERSIZED}
                elif n < 16:
                    expected = {DropReason.MALFORMED}
                else:
                    expected = {DropReason.TRUNCATED}  # the body never came
            case ("body", body):
                stream, _ = await handshaken(node.addr)
                await finish(stream, len(body).to_bytes(4, "big") + body)
                expected = {DropReason.BAD_MAC}
            case ("short_body", n):
                stream, _ = await handshaken(node.addr)
                await finish(stream, n.to_bytes(4, "big") + bytes(n - 1))
                expected = {DropReason.TRUNCATED}
            case ("payload", payload):
                # Properly sealed, but not a message: the core drops it.
                stream, session = await handshaken(node.addr)
                await finish(stream, session.seal_frame(payload))
                expected = {DropReason.MALFORMED, DropReason.UNKNOWN_TYPE, DropReason.UNEXPECTED}
            case ("replayed_session", _):
                # A recorded hello and first frame, replayed: the node answers the hello
                # with fresh keys, so the recorded frame cannot open.
                initiator = Initiator(MEMBER, MESH)
                recorded = initiator.hello()
                stream, session = await handshaken(node.addr, initiator)
                frame = session.seal_frame(wire.encode(wire.Ping(1, node.key)))
                await finish(stream, frame)  # a real TCP ping: acknowledged, no drop
                await exchange(node.addr, recorded + frame)
                expected = {DropReason.BAD_MAC}
        await s.alive_check()
        delta = node.stats.drops - before
        assert sum(delta.values()) == 1, delta
        if expected:
            [reason] = delta
            assert reason in {str(r) for r in expected}, delta
        assert [(m.key, m.incarnation) for m in node.members()] == [(node.key, 0)]
        assert node.running


async def test_connect_and_close_is_not_a_drop() -> None:
    async with lone_node() as node, speaker(node) as s:
        await exchange(node.addr, b"")
        await s.alive_check()
        assert not node.stats.drops


async def test_slow_loris_is_bounded_and_the_node_keeps_working() -> None:
    limit, timeout = 4, 1.0
    config = local(max_streams=limit, stream_timeout=timeout)
    async with cluster() as c:
        a = await c.start(make_node(IDS[0], config=config))
        b = await c.start(make_node(IDS[1], config=config))
        closed_after: list[float] = []
        start = trio.current_time()

        async def idle() -> None:
            stream = await trio.open_tcp_stream(*a.addr)
            async with stream:
                with trio.fail_after(WAIT):
                    try:
                        while await stream.receive_some(1024):
                            pass
                    except trio.BrokenResourceError:
                        pass
                closed_after.append(trio.current_time() - start)

        async with trio.open_nursery() as loris:
            for _ in range(limit + 5):
                loris.start_soon(idle)
            await poll(lambda: a.stats.drops[DropReason.BUSY] == 5)
            await poll(lambda: len(closed_after) == 5)
            assert max(closed_after) < timeout / 2  # the extra ones were closed at once
            # While the slots are held, a real peer is turned away too...
            with pytest.raises(JoinError):
                await b.join([a.addr])
        # ...and the idle ones are closed by the stream timeout, not held for ever.
        assert len(closed_after) == limit + 5
        assert min(sorted(closed_after)[5:]) >= timeout * 0.9
        assert a.stats.drops[DropReason.TIMEOUT] == limit
        assert a.stats.drops[DropReason.BUSY] == 6
        # Then a full push-pull with a real peer works.
        assert await b.join([a.addr]) == 1
        await c.until(lambda: alive_keys(a) == alive_keys(b) == set(MEMBERS[:2]))


async def test_slow_subscriber_does_not_block_the_protocol() -> None:
    async with cluster() as c:
        nodes = [await c.start(make_node(identity)) for identity in IDS[:2]]
        stuck = nodes[1].subscribe(buffer=1)  # never read
        await nodes[1].join([nodes[0].addr])
        for i in range(5):
            nodes[0].broadcast(b"%d" % i)
        await c.until(lambda: len(c.events(1, BroadcastDelivered)) == 5)
        assert nodes[1].io.events_dropped >= 4
        stuck.close()
