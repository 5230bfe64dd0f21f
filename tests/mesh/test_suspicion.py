"""Lifeguard's suspicion timeout: a table test of the pure function, and the tracker."""

from __future__ import annotations

import math

import pytest

from mesh.suspicion import Suspicion, suspicion_bounds, suspicion_timeout


@pytest.mark.parametrize(
    ("confirmations", "expected", "low", "high", "timeout"),
    [
        # No confirmations: the maximum.
        (0, 3, 2.0, 30.0, 30.0),
        # log(c+1)/log(k+1) of the way down from the maximum.
        (1, 3, 2.0, 30.0, 30.0 - 0.5 * 28.0),
        (2, 3, 2.0, 30.0, 30.0 - math.log(3) / math.log(4) * 28.0),
        # All expected confirmations: the minimum.
        (3, 3, 2.0, 30.0, 2.0),
        # More than expected never goes below the minimum.
        (9, 3, 2.0, 30.0, 2.0),
        # Nobody expected to confirm (a tiny mesh): the minimum at once.
        (0, 0, 2.0, 30.0, 2.0),
        # Degenerate bounds.
        (0, 3, 5.0, 5.0, 5.0),
    ],
)
def test_timeout_table(
    confirmations: int, expected: int, low: float, high: float, timeout: float
) -> None:
    assert suspicion_timeout(confirmations, expected, low, high) == pytest.approx(timeout)


def test_timeout_shrinks_monotonically() -> None:
    values = [suspicion_timeout(c, 5, 1.0, 6.0) for c in range(7)]
    assert values == sorted(values, reverse=True)
    assert values[0] == 6.0
    assert values[-1] == 1.0


@pytest.mark.parametrize(
    ("members", "low"),
    [(1, 4.0), (5, 4.0), (10, 4.0), (100, 8.0), (1000, 12.0), (10000, 16.0)],
)
def test_bounds_grow_with_log_of_mesh_size(members: int, low: float) -> None:
    got_low, got_high = suspicion_bounds(members, 1.0, 4.0, 6.0)
    assert got_low == pytest.approx(low)
    assert got_high == pytest.approx(6 * low)


def test_confirmations_count_once_per_member_and_move_the_deadline() -> None:
    s = Suspicion(start=100.0, expected=2, min_timeout=2.0, max_timeout=12.0, confirmers={b"a"})
    assert s.deadline == pytest.approx(112.0)
    assert s.confirm(b"b")
    first = s.deadline
    assert first < 112.0
    assert not s.confirm(b"b")
    assert s.deadline == first
    assert s.confirm(b"c")
    assert s.deadline == pytest.approx(102.0)
    assert not s.confirm(b"d")  # no more than expected are counted
