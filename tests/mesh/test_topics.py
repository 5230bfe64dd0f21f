"""Topic broadcasts reach their audience only (workspace updates go to the nodes that
serve the workspace), in datagrams and over TCP, first-hand and relayed."""

from __future__ import annotations

import msgpack
import pytest

from mesh import BroadcastDelivered, LocalProtocolError, MeshConfig, wire
from mesh.delegate import StaticMembers
from mesh.errors import DropReason
from mesh.queue import BroadcastQueue
from mesh.sim import Simulation
from tests.mesh.recorder import Recorder


class Audience(StaticMembers):
    """Every key is a member; topic audiences are fixed sets of keys."""

    def __init__(self, audiences: dict[str, set[bytes]]) -> None:
        super().__init__(allow_all=True)
        self.audiences = audiences
        self.asked: list[tuple[bytes, str]] = []

    def in_audience(self, peer: bytes, topic: str) -> bool:
        self.asked.append((peer, topic))
        return peer in self.audiences.get(topic, set())


def _with_audience(sim: Simulation, topic: str, members: set[int]) -> Audience:
    audience = Audience({topic: {sim.nodes[i].key for i in members}})
    for node in sim.nodes:
        node.core.delegate = audience
    return audience


def test_topic_round_trips_and_an_untopical_user_message_is_unchanged() -> None:
    plain = wire.User(b"i" * wire.ID_LEN, b"o" * wire.KEY_LEN, b"payload")
    topical = wire.User(plain.id, plain.origin, plain.payload, "workspace:shop")
    assert len(msgpack.unpackb(wire.encode(plain))) == 4  # the pre-topic format
    encoded = wire.encode(topical)
    assert len(encoded) == len(wire.encode(plain)) + wire.topic_overhead(topical.topic)
    for msg in (plain, topical):
        decoded = wire.decode_compound(wire.compound([wire.encode(msg)]))
        assert not isinstance(decoded, DropReason)
        assert decoded.messages == (msg,)
    stream = wire.UserStream(plain.id, plain.origin, b"x" * 70_000, "t")
    assert wire.decode_one(wire.encode(stream), 1 << 20) == stream


@pytest.mark.parametrize("topic", [b"bytes", 7, "", "t" * (wire.MAX_TOPIC + 1)])
def test_a_malformed_topic_is_dropped(topic: object) -> None:
    fields = [int(wire.MsgType.USER), b"i" * wire.ID_LEN, b"o" * wire.KEY_LEN, b"p", topic]
    assert wire.decode_compound(wire.compound([msgpack.packb(fields)])) == DropReason.MALFORMED


def test_the_queue_gives_a_recipient_only_the_topics_it_wants() -> None:
    queue = BroadcastQueue()
    queue.push(b"everyone")
    queue.push(b"shop-update", topic="shop")
    queue.push(b"blog-update", topic="blog")
    assert sorted(queue.take(1000, 0, 5, lambda t: t == "shop")) == [b"everyone", b"shop-update"]
    assert queue.take(1000, 0, 5, lambda t: False) == [b"everyone"]
    # Topic messages nobody wanted are still queued, untouched by those sends.
    assert sorted(queue.take(1000, 0, 5, lambda t: True)) == [
        b"blog-update",
        b"everyone",
        b"shop-update",
    ]


def test_the_queue_scan_is_bounded_when_nothing_is_for_the_recipient() -> None:
    queue = BroadcastQueue()
    for i in range(5000):
        queue.push(b"u%d" % i, topic="other")
    queue.push(b"mine", topic="mine")  # the newest: scanned first among equals
    calls = 0

    def wants(topic: str) -> bool:
        nonlocal calls
        calls += 1
        return topic == "mine"

    assert queue.take(1000, 0, 5, wants) == [b"mine"]
    assert calls <= 300


@pytest.mark.parametrize("size", [200, 10_000], ids=["datagram", "tcp"])
def test_a_topic_broadcast_reaches_exactly_its_audience(size: int) -> None:
    sim = Simulation(24, seed=11, config=MeshConfig.lan(), crypto="nacl")
    audience_ids = {1, 4, 7, 9, 15, 20}
    audience = _with_audience(sim, "workspace:shop", audience_ids)
    rec = Recorder(sim)
    sim.run_until(2)
    sim.nodes[4].core.broadcast(sim.now, b"e" * size, "workspace:shop")
    sim.flush(4)
    sim.run_until(12)
    got = sorted(i for i, _, _ in rec.of(BroadcastDelivered))
    assert got == sorted(audience_ids - {4})
    assert {e.topic for _, e, _ in rec.of(BroadcastDelivered)} == {"workspace:shop"}  # type: ignore[union-attr]
    assert audience.asked  # the audience was consulted, not bypassed


def test_a_node_outside_the_audience_relays_only_into_the_audience() -> None:
    """An edit made on a node that does not serve the workspace (e.g. through its API)
    still reaches every serving node, and no other."""
    sim = Simulation(16, seed=12, config=MeshConfig.lan(), crypto="nacl")
    _with_audience(sim, "workspace:blog", {2, 3, 11})
    rec = Recorder(sim)
    sim.run_until(2)
    sim.nodes[0].core.broadcast(sim.now, b"edit", "workspace:blog")
    sim.flush(0)
    sim.run_until(12)
    assert sorted(i for i, _, _ in rec.of(BroadcastDelivered)) == [2, 3, 11]


def test_everyone_broadcasts_still_reach_everyone_alongside_topics() -> None:
    sim = Simulation(10, seed=13, config=MeshConfig.lan(), crypto="nacl")
    _with_audience(sim, "t", {1, 2})
    rec = Recorder(sim)
    sim.run_until(2)
    sim.nodes[1].core.broadcast(sim.now, b"topical", "t")
    sim.nodes[3].core.broadcast(sim.now, b"for-all")
    sim.flush(1)
    sim.flush(3)
    sim.run_until(12)
    by_payload: dict[bytes, list[int]] = {}
    for i, event, _ in rec.of(BroadcastDelivered):
        by_payload.setdefault(event.payload, []).append(i)  # type: ignore[union-attr]
    assert sorted(by_payload[b"topical"]) == [2]
    assert sorted(by_payload[b"for-all"]) == [i for i in range(10) if i != 3]


def test_an_overlong_topic_is_refused_locally() -> None:
    sim = Simulation(2, seed=1)
    with pytest.raises(LocalProtocolError, match="topic"):
        sim.nodes[0].core.broadcast(sim.now, b"x", "t" * (wire.MAX_TOPIC + 1))
