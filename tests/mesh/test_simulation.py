"""Whole-mesh simulations of 1,000 nodes: deterministic, seeded, in virtual time.

Each runs every node's real MeshCore on the seeded fake network of mesh/sim.py.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from mesh.config import MeshConfig
from mesh.events import BroadcastDelivered, Event, MemberDead
from mesh.member import MemberState
from mesh.sim import NetworkModel, Simulation

pytestmark = pytest.mark.slow

N = 1000


@pytest.mark.parametrize("autojump_clock", [trio.testing.MockClock(autojump_threshold=0)])
async def test_a_broadcast_reaches_every_one_of_1000_nodes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sim = Simulation(N, seed=20, network=NetworkModel(loss=0.01))
    got: dict[int, float] = {}

    def hook(i: int, e: Event, t: float) -> None:
        if isinstance(e, BroadcastDelivered):
            assert i not in got, "delivered twice"
            got[i] = t

    sim.hooks.append(hook)
    await sim.run(1.0)
    start = trio.current_time()
    assert start == pytest.approx(sim.now)
    sim.nodes[17].core.broadcast(sim.now, b"vhost shop.example.test updated")
    sim.flush(17)
    await sim.run(5.0)
    assert sorted(got) == [i for i in range(N) if i != 17]
    # Virtual time moved with trio's clock, and no wall-clock second was slept.
    assert trio.current_time() - start == pytest.approx(5.0, abs=0.06)


def test_a_50_50_partition_past_the_dead_timeout_heals_into_one_view() -> None:
    cfg = MeshConfig.local()
    sim = Simulation(N, seed=21, config=cfg)
    sim.run_until(1)
    sim.partition([range(N // 2), range(N // 2, N)])
    sim.run_until(35)  # the suspicion timeout at N=1000 with confirmations is 9-54 s
    a, b = sim.nodes[0].core, sim.nodes[N - 1].core
    dead_b_in_a = sum(
        1
        for m in a.members()
        if m.state is MemberState.DEAD and m.key in {n.key for n in sim.nodes[N // 2 :]}
    )
    assert dead_b_in_a > N // 2 * 0.9
    assert b.member(sim.nodes[0].key).state is MemberState.DEAD  # type: ignore[union-attr]
    sim.heal()
    healed = sim.now
    for _ in range(12):
        sim.run_until(sim.now + 5)
        if sim.views_agree():
            break
    assert sim.views_agree(), "one membership view after healing"
    assert sim.now - healed <= 60


def test_ten_percent_loss_for_five_minutes_kills_no_one() -> None:
    sim = Simulation(N, seed=22, network=NetworkModel(loss=0.10))
    dead: list[tuple[int, bytes]] = []
    sim.hooks.append(
        lambda i, e, t: dead.append((i, e.member.key)) if isinstance(e, MemberDead) else None
    )
    sim.run_until(300)
    assert dead == []
    assert sim.lost > 0.09 * sim.datagrams
    # Suspicions happened and were all refuted: the mesh was tested, not idle.
    assert sum(n.core.stats.refutations for n in sim.nodes) > 0
    for node in sim.nodes:
        states = {m.state for m in node.core.members()}
        assert states <= {MemberState.ALIVE, MemberState.SUSPECT}
        assert len(node.core.members()) == N
