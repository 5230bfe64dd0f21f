"""Presets and validation of MeshConfig."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest

from mesh.config import MeshConfig


def test_presets_differ_where_documented() -> None:
    lan, wan, local = MeshConfig.lan(), MeshConfig.wan(), MeshConfig.local()
    assert lan.gossip_interval == 0.2
    assert lan.gossip_nodes == 3
    assert wan.probe_timeout > lan.probe_timeout
    assert local.probe_timeout < lan.probe_timeout
    assert MeshConfig.preset("wan", gossip_nodes=5).gossip_nodes == 5


def test_every_field_is_documented() -> None:
    source = Path(inspect.getfile(MeshConfig)).read_text()
    for field in dataclasses.fields(MeshConfig):
        head = source.index(f"    {field.name}:")
        assert '"""' in source[head : head + 300].split("\n", 2)[1], field.name


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"probe_interval": -1}, "probe_interval"),
        ({"probe_timeout": 5.0}, "probe_timeout must not exceed"),
        ({"mtu": 100}, "mtu"),
        ({"gossip_nodes": 0}, "gossip_nodes"),
        ({"probe_interval": float("nan")}, "probe_interval"),
    ],
)
def test_bad_values_are_refused(overrides: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MeshConfig.lan(**overrides)


def test_unknown_preset_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown preset 'moon'"):
        MeshConfig.preset("moon")


@pytest.mark.parametrize(("n", "limit"), [(1, 4), (9, 4), (10, 8), (99, 8), (1000, 16)])
def test_retransmit_limit(n: int, limit: int) -> None:
    assert MeshConfig.lan().retransmit_limit(n) == limit


@pytest.mark.parametrize(("n", "period"), [(5, 30.0), (32, 30.0), (64, 60.0), (1000, 180.0)])
def test_push_pull_period_scales_with_log_n(n: int, period: float) -> None:
    assert MeshConfig.lan().push_pull_period(n) == period
