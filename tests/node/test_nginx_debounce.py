"""Debouncer: leading applies, quiet periods and splay, in virtual time."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

from node.nginx.debounce import Debouncer


async def fire_times(debouncer: Debouncer, pokes: list[float], until: float) -> list[float]:
    """Poke at the given times; return when ``wait()`` returned (virtual seconds)."""
    fired: list[float] = []
    start = trio.current_time()

    async def waiter() -> None:
        while True:
            await debouncer.wait()
            fired.append(round(trio.current_time() - start, 6))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        for at in pokes:
            await trio.sleep_until(start + at)
            debouncer.poke()
        await trio.sleep_until(start + until)
        nursery.cancel_scope.cancel()
    return fired


async def test_one_change_fires_after_min_quiet(autojump_clock: trio.testing.MockClock) -> None:
    assert await fire_times(Debouncer(0.2, 2.0), [1.0], until=10) == [1.2]


async def test_changes_closer_than_min_quiet_coalesce(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pokes = [1.0, 1.1, 1.25, 1.4]
    assert await fire_times(Debouncer(0.2, 2.0), pokes, until=10) == [1.6]


async def test_a_steady_stream_fires_every_max_quiet(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pokes = [i * 0.15 for i in range(34)]  # every 150 ms until 4.95 s (no ties)
    fired = await fire_times(Debouncer(0.2, 2.0), pokes, until=10)
    # 2.0 after the first change of each batch, then the tail 0.2 after the last change
    assert fired == [2.0, 4.1, 5.15]


@pytest.mark.parametrize("lead_after", [None, 2.0])
async def test_1000_changes_in_2_s_make_at_most_3_batches(
    autojump_clock: trio.testing.MockClock, lead_after: float | None
) -> None:
    pokes = [i * 0.002 for i in range(1000)]
    debouncer = Debouncer(0.2, 2.0, splay=0.25, rng=random.Random(1), lead_after=lead_after)
    fired = await fire_times(debouncer, pokes, until=10)
    assert 1 <= len(fired) <= 3
    assert fired[-1] >= pokes[-1]


async def test_a_change_after_a_quiet_spell_is_due_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # 1.0: first ever -> at once; 1.1/1.15: a batch behind it, due 0.2 after 1.15;
    # 3.0: 1.65 s after that batch -> not quiet long enough; 9.0: quiet -> at once.
    pokes = [1.0, 1.1, 1.15, 3.0, 9.0]
    fired = await fire_times(Debouncer(0.2, 2.0, lead_after=2.0), pokes, until=12)
    assert fired == [1.0, 1.35, 3.2, 9.0]


async def test_a_leading_change_still_gets_its_splay(
    autojump_clock: trio.testing.MockClock,
) -> None:
    splay = random.Random(3).uniform(0, 0.5)
    debouncer = Debouncer(0.2, 2.0, splay=0.5, rng=random.Random(3), lead_after=2.0)
    assert await fire_times(debouncer, [4.0], until=10) == [round(4.0 + splay, 6)]


async def test_splay_is_drawn_once_per_batch_from_the_rng(
    autojump_clock: trio.testing.MockClock,
) -> None:
    expected = random.Random(42)
    splays = [expected.uniform(0, 0.5) for _ in range(2)]
    debouncer = Debouncer(0.2, 2.0, splay=0.5, rng=random.Random(42))
    fired = await fire_times(debouncer, [1.0, 1.05, 5.0], until=10)
    assert fired == [round(1.25 + splays[0], 6), round(5.2 + splays[1], 6)]


async def test_wait_reports_how_many_changes_it_coalesced(
    autojump_clock: trio.testing.MockClock,
) -> None:
    debouncer = Debouncer(0.2, 2.0)
    for _ in range(7):
        debouncer.poke()
    assert debouncer.pending
    assert await debouncer.wait() == 7
    assert not debouncer.pending
    with trio.move_on_after(100) as scope:
        await debouncer.wait()
    assert scope.cancelled_caught, "no change, no batch"


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="min_quiet"):
        Debouncer(3.0, 2.0)
    with pytest.raises(ValueError, match="lead_after"):
        Debouncer(0.2, 2.0, lead_after=-1.0)
