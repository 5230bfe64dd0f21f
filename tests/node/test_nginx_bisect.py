"""bisect: finding the units nginx rejects, within the probe budget (no nginx: a model).

The model behaves as nginx does: a tree fails when it includes a bad unit, and the
message names the first one nginx meets (sorted order here).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.nginx.bisect import BisectResult, Probe, bisect, budget


def units(n: int) -> list[str]:
    return [f"ws/vhost/{i:04d}" for i in range(n)]


class Model:
    def __init__(
        self, everything: list[str], failing: Callable[[frozenset[str]], str | None]
    ) -> None:
        self.everything = frozenset(everything)
        self.failing = failing
        self.calls: list[frozenset[str]] = []
        self.passes: list[frozenset[str]] = []

    async def probe(self, exclude: frozenset[str]) -> Probe:
        self.calls.append(exclude)
        message = self.failing(self.everything - exclude)
        if message is None:
            self.passes.append(exclude)
            return Probe(True)
        return Probe(False, message)

    async def run(self, max_bad: int = 4) -> BisectResult:
        full = self.failing(self.everything)
        assert full is not None
        result = await bisect(
            sorted(self.everything),
            self.probe,
            failure=full,
            max_probes=budget(len(self.everything), max_bad),
        )
        assert result.probes == len(self.calls)
        if not result.base_error:
            # the tree to apply is the last one that passed
            assert self.passes[-1] == result.exclude
        return result


def bad_units(bad: set[str]) -> Callable[[frozenset[str]], str | None]:
    def failing(included: frozenset[str]) -> str | None:
        hit = sorted(included & bad)
        return f"unknown directive in {hit[0]}" if hit else None

    return failing


async def test_one_bad_unit_among_1000_takes_about_log2_probes() -> None:
    everything = units(1000)
    model = Model(everything, bad_units({everything[617]}))
    result = await model.run()
    assert result.bad == {everything[617]: f"unknown directive in {everything[617]}"}
    assert result.exclude == {everything[617]}
    assert result.probes <= 1 + 10 + 1
    assert not result.exhausted


async def test_several_bad_units_are_all_found_with_their_own_messages() -> None:
    everything = units(200)
    bad = {everything[i] for i in (0, 57, 58, 199)}
    result = await Model(everything, bad_units(bad)).run()
    assert result.bad == {u: f"unknown directive in {u}" for u in bad}
    assert result.exclude == bad
    assert result.probes <= budget(200, 4)


async def test_of_two_conflicting_units_the_later_is_blamed() -> None:
    everything = units(16)
    a, b = everything[3], everything[11]

    def failing(included: frozenset[str]) -> str | None:
        return "duplicate default server" if {a, b} <= included else None

    result = await Model(everything, failing).run()
    assert result.bad == {b: "duplicate default server"}


async def test_a_unit_broken_by_a_quarantined_dependency_is_found_too() -> None:
    everything = units(16)
    upstream, user = everything[9], everything[2]  # user needs upstream's definitions

    def failing(included: frozenset[str]) -> str | None:
        if upstream in included:
            return "upstream broken"
        return None if user not in included else "host not found in upstream"

    result = await Model(everything, failing).run()
    assert result.bad == {upstream: "upstream broken", user: "host not found in upstream"}


async def test_a_tree_that_fails_without_any_unit_blames_none() -> None:
    everything = units(8)
    model = Model(everything, lambda included: "bad http block")
    result = await model.run()
    assert result.base_error == "bad http block"
    assert result.bad == {}
    assert model.calls == [frozenset(everything)]


async def test_the_budget_stops_the_search_and_applies_what_passed() -> None:
    everything = units(64)
    bad = {everything[i] for i in (5, 20, 35, 50, 60)}
    model = Model(everything, bad_units(bad))
    result = await model.run(max_bad=1)  # budget for one bad unit, there are five
    assert result.exhausted
    assert result.probes <= budget(64, 1)
    found = {u for u, r in result.bad.items() if r.startswith("unknown directive")}
    assert found
    assert found <= bad
    assert bad <= result.exclude, "no bad unit is applied"
    untested = set(result.bad) - found
    assert all(result.bad[u].startswith("not tested: bisection stopped") for u in untested)
    assert result.exclude == set(result.bad)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 300).flatmap(
        lambda n: st.tuples(st.just(n), st.sets(st.integers(0, n - 1), min_size=1, max_size=4))
    )
)
async def test_any_few_bad_units_are_found_exactly_within_budget(
    case: tuple[int, set[int]],
) -> None:
    n, indexes = case
    everything = units(n)
    bad = {everything[i] for i in indexes}
    result = await Model(everything, bad_units(bad)).run()
    assert set(result.bad) == bad
    assert result.exclude == bad
    assert not result.exhausted
    assert result.probes <= budget(n, 4)


def test_budget_grows_with_log2_of_units() -> None:
    assert budget(1, 4) == 1 + 4 * 2
    assert budget(10_000, 4) == 1 + 4 * 15
    assert budget(10_000, 1) == 16


@pytest.mark.parametrize("n", [1, 2, 3])
async def test_tiny_fleets(n: int) -> None:
    everything = units(n)
    result = await Model(everything, bad_units({everything[-1]})).run()
    assert result.bad.keys() == {everything[-1]}
