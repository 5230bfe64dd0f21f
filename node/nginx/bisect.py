"""Find the units that make a tree fail ``nginx -t``, within a bounded number of tests.

Pure: the caller supplies ``probe(exclude) -> Probe`` (render without those units, stage,
test). Units are tried in a fixed (sorted) order so every node of a mesh blames the same
unit. The search keeps two sets:

- *accepted* (A): units known to pass together;
- *suspects* (S): untested units, where A + all of S is known to fail.

A binary search finds the shortest prefix S[:k] such that A + S[:k] fails; then S[k-1] is
to blame (A + S[:k-1] passed), A grows by S[:k-1] and the search goes on over S[k:] after
one test of A + S[k:]. Cost: 1 (the tree with no unit at all, which must pass or no unit
is to blame) + per bad unit about log2(n) + 1. This also handles a unit that conflicts
with an earlier one (the later one is blamed) and a unit that breaks only once another is
excluded (it is found next).

nginx stops at its first error, so the message of the first failing prefix names the
blamed unit's problem. When the budget runs out, the units still untested are quarantined
too - with that said as their reason - and the last passing tree is applied: a known-good
tree now beats a perfect one later.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

__all__ = ["BisectResult", "Probe", "bisect", "budget"]


@dataclass(frozen=True, slots=True)
class Probe:
    ok: bool
    message: str = ""


@dataclass(frozen=True, slots=True)
class BisectResult:
    exclude: frozenset[str]
    """Units left out of the tree to apply (bad and untested ones)."""
    bad: dict[str, str]
    """Quarantined unit -> nginx's reason (or why it was not tested)."""
    probes: int
    base_error: str = ""
    """Set when the tree fails even with every unit excluded: no unit is to blame."""
    exhausted: bool = False


def budget(units: int, max_bad: int) -> int:
    """Probes allowed for ``units`` candidates: enough to isolate ``max_bad`` bad units."""
    return 1 + max(1, max_bad) * (math.ceil(math.log2(max(units, 2))) + 1)


async def bisect(
    units: Sequence[str],
    probe: Callable[[frozenset[str]], Awaitable[Probe]],
    *,
    failure: str,
    max_probes: int,
) -> BisectResult:
    """Find bad units among ``units``, given that the tree with all of them fails with
    ``failure`` (nginx's message). At most ``max_probes`` calls to ``probe``."""
    everything = frozenset(units)
    used = 0

    async def test(included: Sequence[str]) -> Probe:
        nonlocal used
        used += 1
        return await probe(everything - frozenset(included))

    base = await test(())
    if not base.ok:
        return BisectResult(everything, {}, used, base_error=base.message)

    accepted: list[str] = []
    suspects = list(units)
    bad: dict[str, str] = {}
    failing = failure  # message of A + all suspects
    while suspects:
        lo, hi, hi_message = 0, len(suspects), failing
        while hi - lo > 1:
            if used >= max_probes:
                return _exhausted(everything, accepted + suspects[:lo], bad, used, max_probes)
            mid = (lo + hi) // 2
            result = await test(accepted + suspects[:mid])
            if result.ok:
                lo = mid
            else:
                hi, hi_message = mid, result.message
        bad[suspects[hi - 1]] = hi_message
        accepted += suspects[: hi - 1]
        suspects = suspects[hi:]
        if not suspects:
            break
        if used >= max_probes:
            return _exhausted(everything, accepted, bad, used, max_probes)
        result = await test(accepted + suspects)
        if result.ok:
            accepted += suspects
            break
        failing = result.message
    return BisectResult(everything - frozenset(accepted), bad, used)


def _exhausted(
    everything: frozenset[str],
    accepted: list[str],
    bad: dict[str, str],
    used: int,
    max_probes: int,
) -> BisectResult:
    reason = f"not tested: bisection stopped after {max_probes} nginx -t runs"
    untested = sorted(everything - frozenset(accepted) - bad.keys())
    return BisectResult(
        everything - frozenset(accepted),
        {**bad, **dict.fromkeys(untested, reason)},
        used,
        exhausted=True,
    )
