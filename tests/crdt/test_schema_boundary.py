"""Reading back what pycrdt stored: floats, bytearrays, invalid entities skipped, not raised."""

from __future__ import annotations

import json
from typing import Any

from crdt.schema import (
    Invalid,
    StreamProxy,
    Upstream,
    VirtualHost,
    from_crdt,
    read_collection,
    read_entity,
    to_crdt,
)
from tests.crdt.strategies import stream_dict, upstream_dict, vhost_dict


def _as_pycrdt_returns(value: Any) -> Any:
    """What pycrdt hands back: every number a float (443 -> 443.0)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dict):
        return {k: _as_pycrdt_returns(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_pycrdt_returns(v) for v in value]
    return value


def test_from_crdt_converts_numbers_bytes_and_containers() -> None:
    raw = {"port": 443.0, "ratio": 0.5, "blob": bytearray(b"\x00\x01"), "xs": (1.0, 2.5), "b": True}
    assert from_crdt(raw) == {
        "port": 443,
        "ratio": 0.5,
        "blob": b"\x00\x01",
        "xs": [1, 2.5],
        "b": True,
    }
    assert type(from_crdt(raw)["port"]) is int
    assert type(from_crdt(raw)["blob"]) is bytes
    assert from_crdt(2.0**60) == 2.0**60  # beyond 2^53 stays a float: not exact


def test_entities_read_back_from_floats_equal_the_originals() -> None:
    for model, data in (
        (Upstream, upstream_dict()),
        (VirtualHost, vhost_dict()),
        (StreamProxy, stream_dict()),
    ):
        entity = model.model_validate(data)
        stored = _as_pycrdt_returns(json.loads(json.dumps(to_crdt(entity))))
        back = read_entity(model, stored, entity.id)
        assert back == entity
        assert to_crdt(back) == to_crdt(entity)


def test_port_as_float_becomes_int() -> None:
    st = read_entity(StreamProxy, {**stream_dict(), "port": 5353.0}, "dns")
    assert isinstance(st, StreamProxy)
    assert st.port == 5353
    assert type(st.port) is int


def test_read_entity_never_raises_and_reports_the_field() -> None:
    bad = upstream_dict()
    bad["servers"][1]["address"] = "evil;host:80"
    got = read_entity(Upstream, bad, "app")
    assert isinstance(got, Invalid)
    assert got.kind == "Upstream"
    assert got.id == "app"
    assert got.path == "servers[1].address"
    assert "letters, digits" in got.reason
    assert got.raw is bad
    assert "Upstream app: servers[1].address" in str(got)

    for raw in (None, 42, "text", [1, 2], {"id": 5}, {"id": "a" * 500}, bytearray(b"x")):
        result = read_entity(Upstream, raw)
        assert isinstance(result, Invalid), raw

    deep: dict[str, Any] = {}
    cur = deep
    for _ in range(100):
        cur["x"] = {}
        cur = cur["x"]
    assert isinstance(read_entity(Upstream, {**upstream_dict(), "future": deep}), Invalid)


def test_key_must_match_id_and_fills_a_missing_id() -> None:
    got = read_entity(Upstream, upstream_dict(id="other"), "app")
    assert isinstance(got, Invalid)
    assert got.path == "id"
    data = upstream_dict()
    del data["id"]
    assert read_entity(Upstream, data, "app") == Upstream.model_validate(upstream_dict())


def test_read_collection_skips_and_reports() -> None:
    raw = {
        "app": upstream_dict(),
        "b": upstream_dict(id="b", servers=[]),
        "c": "garbage",
    }
    good, bad = read_collection(Upstream, raw)
    assert list(good) == ["app"]
    assert sorted((i.id, i.path) for i in bad) == [("b", "servers"), ("c", "(entity)")]


def test_newer_version_with_unknown_fields_reads_and_keeps_them() -> None:
    raw = _as_pycrdt_returns({**vhost_dict(), "schema_version": 3, "future": {"n": 7}})
    got = read_entity(VirtualHost, raw, "web")
    assert isinstance(got, VirtualHost)
    assert got.schema_version == 3
    assert to_crdt(got)["future"] == {"n": 7}
