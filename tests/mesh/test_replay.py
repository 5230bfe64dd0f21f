"""mesh.replay: sliding anti-replay windows."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesh.replay import ReplayGuard, ReplayWindow


def test_in_order_accepted_and_duplicates_rejected() -> None:
    w = ReplayWindow()
    for seq in range(1, 100):
        assert w.check_and_update(1, seq)
    for seq in range(1, 100):
        assert not w.check_and_update(1, seq)
    assert w.top == 99
    assert w.epoch == 1


def test_first_datagram_of_any_epoch_and_seq_is_accepted() -> None:
    w = ReplayWindow()
    assert w.epoch == -1
    assert w.check_and_update(7, 12345)
    assert (w.epoch, w.top) == (7, 12345)


def test_reordering_within_the_window_is_accepted_once() -> None:
    w = ReplayWindow(size=8)
    order = [5, 3, 1, 2, 4, 8, 7, 6]
    assert all(w.check_and_update(1, s) for s in order)
    assert not any(w.check_and_update(1, s) for s in order)


def test_older_than_the_window_is_rejected() -> None:
    w = ReplayWindow(size=8)
    assert w.check_and_update(1, 100)
    assert not w.check_and_update(1, 92)  # top - 8: just outside
    assert w.check_and_update(1, 93)  # top - 7: the oldest slot
    assert not w.check_and_update(1, 93)


def test_a_big_jump_clears_the_window() -> None:
    w = ReplayWindow(size=8)
    assert w.check_and_update(1, 1)
    assert w.check_and_update(1, 1000)
    assert not w.check_and_update(1, 1)
    assert w.check_and_update(1, 999)
    assert w.check_and_update(1, 993)
    assert not w.check_and_update(1, 992)


def test_slide_keeps_bits_of_what_stays_inside() -> None:
    w = ReplayWindow(size=8)
    assert w.check_and_update(1, 10)
    assert w.check_and_update(1, 8)
    assert w.check_and_update(1, 13)  # slide by 3
    assert not w.check_and_update(1, 10)
    assert not w.check_and_update(1, 8)
    assert w.check_and_update(1, 9)


def test_new_epoch_resets_and_old_epoch_is_rejected() -> None:
    w = ReplayWindow()
    for seq in range(1, 10):
        assert w.check_and_update(1, seq)
    assert w.check_and_update(2, 1)  # the sender restarted: seq starts over
    assert w.check_and_update(2, 2)
    assert not w.check_and_update(1, 10)  # a datagram from before the restart
    assert not w.check_and_update(1, 100)
    assert w.check_and_update(2, 3)  # the rejection changed nothing


def test_window_of_one() -> None:
    w = ReplayWindow(size=1)
    assert w.check_and_update(1, 5)
    assert not w.check_and_update(1, 5)
    assert not w.check_and_update(1, 4)
    assert w.check_and_update(1, 6)


def test_negative_numbers_are_rejected() -> None:
    w = ReplayWindow()
    assert not w.check_and_update(-1, 1)
    assert not w.check_and_update(1, -1)


def test_bad_sizes() -> None:
    with pytest.raises(ValueError, match="window"):
        ReplayWindow(0)
    with pytest.raises(ValueError, match="sender"):
        ReplayGuard(max_senders=0)
    with pytest.raises(ValueError, match="window"):
        ReplayGuard(window=0)


@given(
    st.integers(min_value=1, max_value=40),
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 120)), max_size=200),
)
def test_matches_a_reference_model(size: int, packets: list[tuple[int, int]]) -> None:
    w = ReplayWindow(size)
    epoch, top, seen = -1, 0, set[int]()
    for e, s in packets:
        if e > epoch:
            expected = True
            epoch, top, seen = e, s, {s}
        elif e < epoch or s in seen or top - s >= size:
            expected = False
        else:
            expected = True
            seen.add(s)
            top = max(top, s)
        assert w.check_and_update(e, s) is expected, (e, s)


def test_guard_keeps_one_window_per_sender() -> None:
    g = ReplayGuard()
    assert g.check_and_update(b"a", 1, 1)
    assert g.check_and_update(b"b", 1, 1)
    assert not g.check_and_update(b"a", 1, 1)
    assert not g.check_and_update(b"b", 1, 1)
    assert len(g) == 2
    assert b"a" in g


def test_guard_is_bounded_lru() -> None:
    g = ReplayGuard(max_senders=2)
    assert g.check_and_update(b"a", 1, 1)
    assert g.check_and_update(b"b", 1, 1)
    assert not g.check_and_update(b"a", 1, 1)  # touches a: b is now the oldest
    assert g.check_and_update(b"c", 1, 1)  # evicts b
    assert len(g) == 2
    assert b"b" not in g
    assert b"a" in g
    assert b"c" in g


def test_guard_forget() -> None:
    g = ReplayGuard()
    assert g.check_and_update(b"a", 1, 1)
    g.forget(b"a")
    g.forget(b"never seen")
    assert len(g) == 0
    assert g.check_and_update(b"a", 1, 1)  # a fresh window
