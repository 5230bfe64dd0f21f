"""Admission of a non-member over real loopback TCP: one bounded exchange, answered by
the delegate; nothing else a stranger sends has any effect."""

from __future__ import annotations

import time

import pytest
import trio

from mesh import AdmissionError, Identity, MeshConfig, MeshNode, request_admission, wire
from mesh.delegate import StaticMembers
from mesh.driver import ADMISSION_MAX_REQUEST
from mesh.handshake import REPLY_LENGTH, Initiator, Session
from mesh.streams import Reader

MESH = b"admission-mesh"
SEED = Identity.from_seed(b"\x01" * 32)
NEWCOMER = Identity.from_seed(b"\x02" * 32)


class Gatekeeper(StaticMembers):
    """Admits whoever presents the right secret, answering with a welcome."""

    def __init__(self) -> None:
        super().__init__([SEED.public_key])
        self.requests: list[tuple[bytes, bytes]] = []

    def admit(self, peer: bytes, payload: bytes) -> bytes | None:
        self.requests.append((peer, payload))
        if payload != b"open sesame":
            return None
        self.keys.add(peer)
        return b"welcome " + peer[:4] + b"x" * 100_000  # larger than a stranger may send


def _node(identity: Identity, delegate: StaticMembers, *, admissions: bool) -> MeshNode:
    return MeshNode(
        identity=identity,
        mesh_id=MESH,
        bind=("127.0.0.1", 0),
        config=MeshConfig.local(push_pull_interval=1.0),
        delegate=delegate,
        boot_epoch=time.time_ns(),
        admissions=admissions,
    )


async def test_a_stranger_with_the_right_secret_is_admitted_then_joins() -> None:
    gate = Gatekeeper()
    seed = _node(SEED, gate, admissions=True)
    async with trio.open_nursery() as nursery:
        await nursery.start(seed.run)
        admitted = await request_admission(NEWCOMER, MESH, seed.addr, b"open sesame")
        assert admitted.responder == SEED.public_key
        assert admitted.payload.startswith(b"welcome " + NEWCOMER.public_key[:4])
        assert gate.requests == [(NEWCOMER.public_key, b"open sesame")]
        assert seed.io.admissions == 1
        # Now a member: a normal join works.
        newcomer = _node(
            NEWCOMER, StaticMembers([SEED.public_key, NEWCOMER.public_key]), admissions=False
        )
        await nursery.start(newcomer.run)
        with trio.fail_after(10):
            await newcomer.join([seed.addr])
        assert {m.key for m in seed.members()} == {SEED.public_key, NEWCOMER.public_key}
        nursery.cancel_scope.cancel()


async def test_a_wrong_secret_is_refused_and_changes_nothing() -> None:
    gate = Gatekeeper()
    seed = _node(SEED, gate, admissions=True)
    async with trio.open_nursery() as nursery:
        await nursery.start(seed.run)
        with pytest.raises(AdmissionError, match="refused the admission request"):
            await request_admission(NEWCOMER, MESH, seed.addr, b"guess")
        assert gate.keys == {SEED.public_key}
        assert seed.io.admissions_refused == 1
        assert seed.stats.drops["not_member"] >= 1
        nursery.cancel_scope.cancel()


async def test_a_node_without_admissions_refuses_strangers_at_the_handshake() -> None:
    gate = Gatekeeper()
    seed = _node(SEED, gate, admissions=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(seed.run)
        with pytest.raises(AdmissionError, match="closed the connection"):
            await request_admission(NEWCOMER, MESH, seed.addr, b"open sesame")
        assert gate.requests == []
        nursery.cancel_scope.cancel()


async def test_a_stranger_may_send_nothing_but_one_small_admission_request() -> None:
    gate = Gatekeeper()
    seed = _node(SEED, gate, admissions=True)

    async def send_one(message: bytes) -> None:
        stream = await trio.open_tcp_stream(*seed.addr)
        async with stream:
            initiator = Initiator(NEWCOMER, MESH)
            await stream.send_all(initiator.hello())
            reader = Reader(stream)
            reply = await reader.exactly(REPLY_LENGTH)
            assert reply is not None
            session = initiator.finish(reply, lambda _k: True)
            assert isinstance(session, Session)
            await stream.send_all(session.seal_frame(message))
            # The node closes the stream without answering.
            assert await reader.exactly(1) is None

    async with trio.open_nursery() as nursery:
        await nursery.start(seed.run)
        before = dict(seed.stats.drops)
        # A push-pull (a member's exchange) from a stranger: dropped, no merge happens.
        await send_one(wire.encode(wire.PushPull(False, [], b"")))
        # A user broadcast over TCP: dropped, never delivered.
        await send_one(wire.encode(wire.UserStream(b"i" * wire.ID_LEN, NEWCOMER.public_key, b"x")))
        # An admission request larger than a stranger may send: dropped unread.
        await send_one(wire.encode(wire.AdmitRequest(b"x" * ADMISSION_MAX_REQUEST)))
        assert gate.requests == []
        assert gate.keys == {SEED.public_key}
        assert seed.stats.drops["not_member"] - before.get("not_member", 0) == 2
        assert seed.stats.drops["oversized"] - before.get("oversized", 0) == 1
        assert {m.key for m in seed.members()} == {SEED.public_key}
        nursery.cancel_scope.cancel()
