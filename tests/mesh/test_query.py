"""Queries between members over real loopback TCP: one bounded request, one bounded
answer from the answerer; refusals, size caps, the served-queries cap and timeouts reach
the asker as one-line QueryErrors; non-members cannot ask at all."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio

from mesh import (
    MAX_SERVED_QUERIES,
    QUERY_MAX_ANSWER,
    QUERY_MAX_REQUEST,
    Identity,
    LocalProtocolError,
    MeshConfig,
    MeshNode,
    QueryError,
    wire,
)
from mesh.delegate import Answerer, StaticMembers
from mesh.errors import DropReason
from mesh.handshake import (
    HELLO_PREFIX_LENGTH,
    REPLY_LENGTH,
    Initiator,
    Session,
    hello_length_from_prefix,
    respond,
)
from mesh.query import exchange
from mesh.security import DatagramSeal
from mesh.streams import Reader, read_frame
from tests.mesh.test_driver import poll

MESH = b"query-mesh"
ASKER = Identity.from_seed(b"\x01" * 32)
ANSWERER = Identity.from_seed(b"\x02" * 32)
STRANGER = Identity.from_seed(b"\x03" * 32)
GONE = Identity.from_seed(b"\x04" * 32)
MEMBERS = [ASKER.public_key, ANSWERER.public_key, GONE.public_key]
WAIT = 10.0


@dataclass
class Oracle:
    """Answers ``ping`` with ``pong``, refuses ``no``, raises on ``bug``, answers too much
    to ``big``; ``hold`` waits until ``release`` is set."""

    asked: list[tuple[bytes, bytes]] = field(default_factory=list)
    release: trio.Event = field(default_factory=trio.Event)
    holding: int = 0
    held: trio.Event = field(default_factory=trio.Event)

    async def answer_query(self, sender: bytes, payload: bytes) -> bytes | None:
        self.asked.append((sender, payload))
        if payload == b"hold":
            self.holding += 1
            if self.holding == MAX_SERVED_QUERIES:
                self.held.set()
            await self.release.wait()
            return b"released"
        if payload == b"no":
            return None
        if payload == b"bug":
            raise RuntimeError("the answerer's bug")
        if payload == b"big":
            return b"x" * (QUERY_MAX_ANSWER + 1)
        if payload == b"page":
            return b"p" * QUERY_MAX_ANSWER
        return b"pong:" + payload


def _node(
    identity: Identity,
    *,
    answerer: Answerer | None = None,
    admissions: bool = False,
    config: MeshConfig | None = None,
) -> MeshNode:
    return MeshNode(
        identity=identity,
        mesh_id=MESH,
        bind=("127.0.0.1", 0),
        config=config or MeshConfig.local(push_pull_interval=1.0),
        delegate=StaticMembers(MEMBERS),
        boot_epoch=time.time_ns(),
        admissions=admissions,
        answerer=answerer,
    )


@asynccontextmanager
async def pair(
    oracle: Answerer | None, **kw: Any
) -> AsyncIterator[tuple[MeshNode, MeshNode, trio.Nursery]]:
    """An asker joined to an answering node; both stopped at the end."""
    asker = _node(ASKER)
    answering = _node(ANSWERER, answerer=oracle, **kw)
    async with trio.open_nursery() as nursery:
        await nursery.start(answering.run)
        await nursery.start(asker.run)
        with trio.fail_after(WAIT):
            await asker.join([answering.addr])
        yield asker, answering, nursery
        nursery.cancel_scope.cancel()


async def test_a_member_asks_and_gets_the_answer() -> None:
    oracle = Oracle()
    async with pair(oracle) as (asker, answering, _):
        assert await asker.query(ANSWERER.public_key, b"ping") == b"pong:ping"
        # The largest answer allowed arrives whole.
        assert await asker.query(ANSWERER.public_key, b"page") == b"p" * QUERY_MAX_ANSWER
        assert oracle.asked == [(ASKER.public_key, b"ping"), (ASKER.public_key, b"page")]
        assert answering.io.queries_answered == 2
        assert answering.stats.messages_in["query"] == 2
        assert {m.key for m in answering.members()} == {ASKER.public_key, ANSWERER.public_key}


async def test_refusals_reach_the_asker_in_one_line() -> None:
    oracle = Oracle()
    async with pair(oracle) as (asker, answering, _):
        for payload in (b"no", b"bug", b"big"):
            with pytest.raises(QueryError, match="refused the query") as caught:
                await asker.query(ANSWERER.public_key, payload)
            assert caught.value.reason == "refused"
            assert "\n" not in str(caught.value)
        assert answering.io.queries_refused == 3
        assert answering.io.queries_failed == 2  # the bug and the oversized answer
        # The node still answers afterwards.
        assert await asker.query(ANSWERER.public_key, b"ok") == b"pong:ok"


async def test_a_node_without_an_answerer_refuses_every_query() -> None:
    async with pair(None) as (asker, answering, _):
        with pytest.raises(QueryError, match="refused") as caught:
            await asker.query(ANSWERER.public_key, b"ping")
        assert caught.value.reason == "refused"
        assert answering.io.queries_refused == 1


async def test_requests_over_the_cap_are_refused_locally_and_dropped_remotely() -> None:
    oracle = Oracle()
    async with pair(oracle) as (asker, answering, _):
        with pytest.raises(LocalProtocolError, match="limit"):
            await asker.query(ANSWERER.public_key, b"q" * QUERY_MAX_REQUEST)
        with pytest.raises(LocalProtocolError, match="itself"):
            await asker.query(ASKER.public_key, b"ping")
        # A member that sends one anyway gets no answer: dropped unread, stream closed.
        before = answering.stats.drops["oversized"]
        reply = await _send_raw(ASKER, answering, wire.encode(wire.Query(b"q" * QUERY_MAX_REQUEST)))
        assert reply is None
        assert answering.stats.drops["oversized"] == before + 1
        # So is a malformed one.
        before = answering.stats.drops["malformed"]
        assert await _send_raw(ASKER, answering, b"\x92\x0e\xa3str") is None
        assert answering.stats.drops["malformed"] == before + 1
        assert oracle.asked == []


async def test_at_most_a_few_queries_are_served_at_once() -> None:
    oracle = Oracle()
    async with pair(oracle) as (asker, answering, _):
        answers: list[bytes] = []

        async def ask_and_keep() -> None:
            answers.append(await asker.query(ANSWERER.public_key, b"hold"))

        async with trio.open_nursery() as holders:
            for _ in range(MAX_SERVED_QUERIES):
                holders.start_soon(ask_and_keep)
            with trio.fail_after(WAIT):
                await oracle.held.wait()
            with pytest.raises(QueryError, match="busy") as caught:
                await asker.query(ANSWERER.public_key, b"ping")
            assert caught.value.reason == "busy"
            assert answering.stats.drops["busy"] == 1
            oracle.release.set()
        assert answers == [b"released"] * MAX_SERVED_QUERIES
        assert await asker.query(ANSWERER.public_key, b"ping") == b"pong:ping"


async def test_a_slow_answer_times_out_on_both_sides() -> None:
    oracle = Oracle()  # never released
    config = MeshConfig.local(push_pull_interval=1.0, stream_timeout=0.5)
    async with pair(oracle, config=config) as (asker, answering, _):
        with pytest.raises(QueryError, match=r"did not answer within 0\.2 s") as caught:
            await asker.query(ANSWERER.public_key, b"hold", wait=0.2)
        assert caught.value.reason == "timeout"
        # The answering side gives up within its own stream_timeout.
        await poll(lambda: answering.stats.drops["timeout"] >= 1)
        assert answering.io.queries_answered == 0


async def test_unknown_and_unreachable_members() -> None:
    oracle = Oracle()
    async with pair(oracle) as (asker, _answering, _):
        with pytest.raises(QueryError, match="not a member") as caught:
            await asker.query(STRANGER.public_key, b"ping")
        assert caught.value.reason == "unknown"
        # A member whose node stopped but is not declared dead yet: nothing listens.
        gone = _node(GONE)
        async with trio.open_nursery() as inner:
            await inner.start(gone.run)
            with trio.fail_after(WAIT):
                await gone.join([asker.addr])
            inner.cancel_scope.cancel()
        member = asker.member(GONE.public_key)
        assert member is not None
        assert member.reachable
        with pytest.raises(QueryError, match="cannot reach") as caught:
            await asker.query(GONE.public_key, b"ping")
        assert caught.value.reason == "unreachable"


@pytest.mark.parametrize("admissions", [False, True])
async def test_a_non_member_cannot_ask(admissions: bool) -> None:
    oracle = Oracle()
    async with pair(oracle, admissions=admissions) as (_asker, answering, _):
        before = answering.stats.drops["not_member"]
        assert await _send_raw(STRANGER, answering, wire.encode(wire.Query(b"ping"))) is None
        assert answering.stats.drops["not_member"] == before + 1
        assert oracle.asked == []


async def test_a_query_in_a_datagram_is_unexpected() -> None:
    async with pair(Oracle()) as (_asker, answering, _):
        seal = DatagramSeal(ASKER, lambda _k: True, boot_epoch=time.time_ns())
        before = answering.stats.drops["unexpected"]
        payload = wire.compound([wire.encode(wire.Query(b"ping"))])
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        with sock:
            await sock.sendto(seal.seal(ANSWERER.public_key, payload), answering.addr)
        await poll(lambda: answering.stats.drops["unexpected"] > before)


async def _send_raw(identity: Identity, node: MeshNode, frame: bytes) -> bytes | None:
    """Open a stream to ``node`` as ``identity``, send one frame, return the reply frame
    (None when the node closes the stream without one, or refuses the handshake)."""
    stream = await trio.open_tcp_stream(*node.addr)
    async with stream:
        initiator = Initiator(identity, MESH)
        await stream.send_all(initiator.hello())
        reader = Reader(stream)
        reply = await reader.exactly(REPLY_LENGTH)
        if reply is None:
            return None
        session = initiator.finish(reply, lambda _k: True)
        assert isinstance(session, Session)
        session.feed(reader.rest())
        await stream.send_all(session.seal_frame(frame))
        with trio.fail_after(WAIT):
            answer = await read_frame(stream, session)
        # A drop is counted before the node closes the stream.
        return answer if isinstance(answer, bytes) else None


@pytest.mark.parametrize(
    ("reply", "reason", "dropped"),
    [
        (wire.encode(wire.Ack(1)), "bad_reply", "unexpected"),
        (b"\x93\x0f\x07\xc4\x00", "bad_reply", "malformed"),
        (wire.encode(wire.QueryReply(wire.QueryStatus.REFUSED, b"")), "refused", None),
    ],
)
async def test_the_asker_checks_the_reply(reply: bytes, reason: str, dropped: str | None) -> None:
    """A responder (a fake one here) that answers wrongly: the asker counts the drop and
    raises a one-line QueryError."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]

    async def fake_responder() -> None:
        stream = await listeners[0].accept()
        async with stream:
            reader = Reader(stream)
            prefix = await reader.exactly(HELLO_PREFIX_LENGTH)
            assert prefix is not None
            length = hello_length_from_prefix(prefix)
            assert isinstance(length, int)
            rest = await reader.exactly(length - HELLO_PREFIX_LENGTH)
            assert rest is not None
            answer = respond(ANSWERER, MESH, prefix + rest, lambda _k: True)
            assert not isinstance(answer, DropReason)
            session, hello_reply = answer
            await stream.send_all(hello_reply)
            session.feed(reader.rest())
            assert isinstance(await read_frame(stream, session), bytes)
            await stream.send_all(session.seal_frame(reply))

    drops: list[DropReason] = []
    request = wire.encode(wire.Query(b"ping"))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(fake_responder)
        with pytest.raises(QueryError) as caught, trio.fail_after(WAIT):
            await exchange(
                ASKER, MESH, ("127.0.0.1", port), ANSWERER.public_key, request,
                lambda _k: True, drops.append,
            )  # fmt: skip
    assert caught.value.reason == reason
    assert drops == ([DropReason(dropped)] if dropped else [])
    await listeners[0].aclose()
