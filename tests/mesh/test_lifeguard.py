"""Lifeguard cuts false "dead" declarations caused by a slow member by at least 10x."""

from __future__ import annotations

from bench.lifeguard import run


def test_lifeguard_cuts_false_positives_from_a_slow_member_tenfold() -> None:
    classic = run(lifeguard=False, nodes=50, seconds=300, seed=2)
    lifeguard = run(lifeguard=True, nodes=50, seconds=300, seed=2)
    # Healthy members declared dead because of the slow one: Lifeguard's target.
    assert classic.healthy >= 10 * max(1, lifeguard.healthy), (classic, lifeguard)
    # Counting the slow member too (it really is silent 2 s at a time), still fewer.
    assert lifeguard.healthy + lifeguard.slow < classic.healthy + classic.slow
