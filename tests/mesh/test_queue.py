"""The transmit-limited broadcast queue."""

from __future__ import annotations

from mesh.queue import BroadcastQueue


def test_fewest_sent_first_then_newest() -> None:
    q = BroadcastQueue()
    q.push(b"old")
    q.push(b"new")
    assert q.take(budget=3, overhead=0, limit=5) == [b"new"]
    # "old" has been sent 0 times, "new" once: "old" goes first now.
    assert q.take(budget=3, overhead=0, limit=5) == [b"old"]
    assert len(q) == 2


def test_a_broadcast_leaves_after_its_transmit_limit() -> None:
    q = BroadcastQueue()
    done: list[bool] = []
    q.push(b"x", on_done=lambda: done.append(True))
    for _ in range(3):
        assert q.take(budget=100, overhead=0, limit=3) == [b"x"]
    assert len(q) == 0
    assert done == [True]
    assert q.take(budget=100, overhead=0, limit=3) == []


def test_newer_record_about_the_same_key_invalidates_the_older() -> None:
    q = BroadcastQueue()
    q.push(b"alive-1", key=b"node-a")
    q.push(b"other", key=b"node-b")
    q.push(b"alive-2", key=b"node-a")
    assert sorted(q.take(budget=1000, overhead=0, limit=5)) == [b"alive-2", b"other"]
    assert len(q) == 2


def test_budget_and_overhead_are_respected_and_small_items_still_fit() -> None:
    q = BroadcastQueue()
    q.push(b"a" * 50)
    q.push(b"b" * 10)
    q.push(b"c" * 60)
    got = q.take(budget=75, overhead=2, limit=5)
    assert got == [b"c" * 60, b"b" * 10]
    assert sum(len(x) + 2 for x in got) <= 75


def test_prune_drops_the_most_sent() -> None:
    q = BroadcastQueue()
    q.push(b"a")
    q.take(budget=10, overhead=0, limit=9)
    q.push(b"b")
    q.push(b"c")
    q.prune(keep=2)
    assert sorted(q.take(budget=10, overhead=0, limit=9)) == [b"b", b"c"]


def test_clear() -> None:
    q = BroadcastQueue()
    q.push(b"a", key=b"k")
    q.clear()
    assert len(q) == 0
    q.push(b"b", key=b"k")
    assert q.take(budget=10, overhead=0, limit=1) == [b"b"]
