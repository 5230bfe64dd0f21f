"""The protocol core, driven through the deterministic simulator (small meshes)."""

from __future__ import annotations

import random

import pytest

from mesh import wire
from mesh.config import MeshConfig
from mesh.core import MeshCore
from mesh.delegate import StaticMembers
from mesh.errors import LocalProtocolError, MetaTooLarge
from mesh.events import (
    BroadcastDelivered,
    MemberAlive,
    MemberDead,
    MemberJoined,
    MemberLeft,
    MemberSuspect,
    MemberUpdated,
)
from mesh.member import MemberState
from mesh.security import PlainSeal
from mesh.sim import Simulation
from mesh.suspicion import suspicion_bounds
from tests.mesh.recorder import Recorder


def state_of(sim: Simulation, viewer: int, subject: int) -> MemberState | None:
    member = sim.nodes[viewer].core.member(sim.nodes[subject].key)
    return None if member is None else member.state


def test_nodes_join_from_nothing_through_one_seed() -> None:
    sim = Simulation(8, seed=3, config=MeshConfig.local(), converged=False)
    rec = Recorder(sim)
    for node in sim.nodes[1:]:
        node.core.join(sim.now, [sim.nodes[0].addr])
        sim.flush(node.index)
    sim.run_until(10)
    assert sim.views_agree()
    # Every node saw the 7 others join, once each.
    for i in range(8):
        joined = {e.member.key for j, e, _ in rec.of(MemberJoined) if j == i}  # type: ignore[union-attr]
        assert joined == {n.key for n in sim.nodes} - {sim.nodes[i].key}


def test_a_broadcast_is_delivered_once_to_every_other_node() -> None:
    sim = Simulation(12, seed=4, config=MeshConfig.lan(), crypto="nacl")
    rec = Recorder(sim)
    sim.run_until(1)
    sim.nodes[5].core.broadcast(sim.now, b"edit-1")
    sim.flush(5)
    sim.run_until(6)
    deliveries = rec.of(BroadcastDelivered)
    assert sorted(i for i, _, _ in deliveries) == [i for i in range(12) if i != 5]
    assert all(e.payload == b"edit-1" for _, e, _ in deliveries)  # type: ignore[union-attr]
    # Eager push: everyone has it within a few network hops, long before a gossip round.
    assert max(t for _, _, t in deliveries) - 1.0 < 0.1


def test_a_broadcast_too_large_for_a_datagram_travels_over_tcp() -> None:
    sim = Simulation(6, seed=5)
    rec = Recorder(sim)
    big = bytes(range(256)) * 40  # 10 KB
    assert len(big) > sim.nodes[0].core.max_user_datagram()
    sim.nodes[0].core.broadcast(sim.now, big)
    sim.flush(0)
    sim.run_until(3)
    assert sorted(i for i, _, _ in rec.of(BroadcastDelivered)) == [1, 2, 3, 4, 5]
    assert sum(n.core.stats.streams_opened for n in sim.nodes) >= 3


def test_kill_is_detected_within_the_suspicion_bound() -> None:
    cfg = MeshConfig.local()
    sim = Simulation(10, seed=6, config=cfg)
    rec = Recorder(sim)
    sim.run_until(2)
    sim.kill(4)
    killed_at = sim.now
    sim.run_until(60)
    dead = rec.of(MemberDead, sim.nodes[4].key)
    assert sorted(i for i, _, _ in dead) == [i for i in range(10) if i != 4]
    _, high = suspicion_bounds(
        10, cfg.probe_interval, cfg.suspicion_mult, cfg.suspicion_max_timeout_mult
    )
    # Detection: the next probe of it (at most one round of the others' probes away), its
    # timeouts, then at most the maximum suspicion time.
    bound = 2 * cfg.probe_interval + high
    assert max(t for _, _, t in dead) - killed_at <= bound
    assert not rec.of(MemberDead, sim.nodes[3].key)


def test_a_restarted_node_comes_back_with_a_higher_incarnation() -> None:
    sim = Simulation(6, seed=7, config=MeshConfig.local())
    rec = Recorder(sim)
    sim.kill(2)
    sim.run_until(40)
    before = sim.nodes[0].core.member(sim.nodes[2].key)
    assert before is not None
    assert before.state is MemberState.DEAD
    sim.restart(2, seeds=[0])
    sim.run_until(50)
    assert sim.views_agree()
    for i in (0, 1, 3, 4, 5):
        member = sim.nodes[i].core.member(sim.nodes[2].key)
        assert member is not None
        assert member.state is MemberState.ALIVE
        assert member.incarnation > before.incarnation
    assert len(rec.of(MemberJoined, sim.nodes[2].key)) >= 5


def test_a_graceful_leave_is_seen_as_left_not_dead() -> None:
    sim = Simulation(6, seed=8, config=MeshConfig.local())
    rec = Recorder(sim)
    sim.run_until(1)
    sim.nodes[3].core.leave(sim.now)
    sim.flush(3)
    sim.run_until(2)
    sim.kill(3)  # the process exits after leaving
    sim.run_until(30)
    assert sorted(i for i, _, _ in rec.of(MemberLeft, sim.nodes[3].key)) == [0, 1, 2, 4, 5]
    assert not rec.of(MemberDead, sim.nodes[3].key)
    assert state_of(sim, 0, 3) is MemberState.LEFT


def test_a_suspect_that_answers_refutes_and_is_never_declared_dead() -> None:
    cfg = MeshConfig.local()
    sim = Simulation(8, seed=9, config=cfg)
    rec = Recorder(sim)
    for start in (1.0, 11.0, 21.0):
        sim.run_until(start)
        sim.stall(6, 2.5)  # shorter than the minimum suspicion timeout (3 s)
    sim.run_until(40)
    assert rec.of(MemberSuspect, sim.nodes[6].key)
    assert rec.of(MemberAlive, sim.nodes[6].key)
    assert not rec.of(MemberDead)
    assert sim.nodes[6].core.stats.refutations >= 1
    assert sim.nodes[6].core.incarnation >= 1
    assert sim.views_agree()


def test_indirect_probes_keep_a_member_alive_behind_an_asymmetric_partition() -> None:
    sim = Simulation(6, seed=10, config=MeshConfig.local(tcp_fallback_ping=False))
    rec = Recorder(sim)
    sim.block(0, 1)
    sim.block(1, 0)
    sim.run_until(60)
    assert not rec.of(MemberDead)
    assert sim.nodes[0].core.stats.indirect_probes > 0
    assert sim.views_agree()


def test_metadata_update_reaches_everyone_and_bumps_the_incarnation() -> None:
    sim = Simulation(5, seed=11, config=MeshConfig.local())
    rec = Recorder(sim)
    core = sim.nodes[1].core
    core.set_meta(sim.now, b"rev=9f3c")
    sim.flush(1)
    sim.run_until(5)
    updates = rec.of(MemberUpdated, sim.nodes[1].key)
    assert sorted(i for i, _, _ in updates) == [0, 2, 3, 4]
    assert all(e.member.meta == b"rev=9f3c" for _, e, _ in updates)  # type: ignore[union-attr]
    assert core.incarnation == 1


def metadata_spread(config: MeshConfig, n: int = 40, seed: int = 5) -> tuple[float, float]:
    """When the first and the last other node learned of one node's new metadata."""
    sim = Simulation(n, seed=seed, config=config)
    rec = Recorder(sim)
    sim.run_until(1.0)
    start = sim.now
    sim.nodes[0].core.set_meta(sim.now, b"rev=1")
    sim.flush(0)
    sim.run_until(start + 10)
    times = sorted(t - start for _, _, t in rec.of(MemberUpdated, sim.nodes[0].key))
    assert len(times) == n - 1, "everyone hears of it"
    return times[0], times[-1]


def test_new_metadata_is_pushed_at_once_and_relayed_in_news_rounds() -> None:
    eager_first, eager_last = metadata_spread(MeshConfig.lan())
    _lazy_first, lazy_last = metadata_spread(MeshConfig.lan(eager_push=False, news_delay=0))
    # Pushed by its node: the first peers have it after one network latency (<= 5 ms),
    # not at the next gossip round (up to 200 ms later).
    assert eager_first <= 0.005
    # Relayed news rounds 50 ms apart rather than gossip rounds 200 ms apart.
    assert eager_last < 0.25
    assert eager_last < lazy_last / 2, (eager_last, lazy_last)


def test_news_rounds_stay_within_their_rate() -> None:
    sim = Simulation(30, seed=21, config=MeshConfig.lan())
    sim.run_until(1.0)
    for node in sim.nodes:  # everyone changes at once: each node hears 29 updates
        node.core.set_meta(sim.now, b"rev=2")
        sim.flush(node.index)
    before = sim.datagrams
    sim.run_until(3.0)
    # Per node per second: ~8 without news rounds (probes, acks, gossip rounds with
    # something to carry). Relaying each update on its own would add 29 x 3 / 2 = 43.
    per_node_second = (sim.datagrams - before) / 30 / 2.0
    assert per_node_second < 15, per_node_second


def test_metadata_over_512_bytes_is_refused_with_a_clear_error() -> None:
    sim = Simulation(2, seed=12)
    with pytest.raises(MetaTooLarge, match="513 bytes; the limit is 512 bytes"):
        sim.nodes[0].core.set_meta(sim.now, b"x" * 513)
    assert sim.nodes[0].core.meta == b""
    assert sim.nodes[0].core.incarnation == 0


def test_joining_needs_a_seed_other_than_itself() -> None:
    sim = Simulation(1, seed=13)
    node = sim.nodes[0]
    with pytest.raises(LocalProtocolError, match="no seed"):
        node.core.join(sim.now, [node.addr])


def test_gossip_about_a_non_member_is_ignored() -> None:
    keys = [bytes([i]) * 32 for i in range(2)]
    members = StaticMembers(keys)
    core = MeshCore(
        key=keys[0],
        addr=("127.0.0.1", 1),
        config=MeshConfig.lan(),
        seal=PlainSeal(keys[0], members.is_member, boot_epoch=1),
        delegate=members,
        rng=random.Random(1),
        now=0.0,
    )
    sender = PlainSeal(keys[1], members.is_member, boot_epoch=1)
    outsider = b"\x99" * 32
    alive = wire.encode(wire.Alive(1, outsider, ("127.0.0.9", 9), b""))
    core.receive_datagram(1.0, ("127.0.0.1", 2), sender.seal(keys[0], wire.compound([alive])))
    assert core.member(outsider) is None
    assert core.stats.drops["not_member"] == 1
    assert not core.events()


def test_a_partition_heals_into_one_view() -> None:
    cfg = MeshConfig.local()
    sim = Simulation(10, seed=14, config=cfg)
    rec = Recorder(sim)
    sim.partition([range(5), range(5, 10)])
    sim.run_until(60)
    # Each side declared the other dead.
    assert state_of(sim, 0, 7) is MemberState.DEAD
    assert state_of(sim, 7, 0) is MemberState.DEAD
    sim.heal()
    healed = sim.now
    sim.run_until(healed + 4 * cfg.reconnect_interval + 10)
    assert sim.views_agree()
    back = [t for _, e, t in rec.of(MemberJoined) if t > healed]
    assert back


def test_the_largest_datagram_payload_goes_by_datagram_and_one_more_byte_by_tcp() -> None:
    for extra, streams in ((0, 0), (1, 3)):
        sim = Simulation(5, seed=15)
        core = sim.nodes[0].core
        core.broadcast(sim.now, b"p" * (core.max_user_datagram() + extra))
        assert len(core.streams_to_open()) == streams
        sent = core.datagrams_to_send()
        assert all(len(data) <= core.config.mtu for _, data in sent)
        assert (len(sent) > 0) == (streams == 0)
