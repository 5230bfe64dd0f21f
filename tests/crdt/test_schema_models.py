"""Every kind: a valid example, its rules (field path + reason), round trips, unknown fields."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from crdt.schema import (
    KINDS,
    SCHEMA_VERSION,
    AccessList,
    Certificate,
    Entity,
    MeshSettings,
    Organization,
    SchemaError,
    StreamProxy,
    Upstream,
    VirtualHost,
    Workspace,
    field_errors,
    parse,
    to_crdt,
)
from tests.crdt.strategies import (
    access_list_dict,
    certificate_dict,
    stream_dict,
    upstream_dict,
    vhost_dict,
)

EXAMPLES: list[tuple[type[Entity], dict[str, Any]]] = [
    (Organization, {"id": "acme", "name": "ACME Corp", "description": "the org"}),
    (Workspace, {"id": "prod", "organization": "acme", "name": "Production"}),
    (MeshSettings, {"acme_contact": "ops@example.com", "worker_shutdown_timeout": "1m"}),
    (Upstream, upstream_dict()),
    (VirtualHost, vhost_dict()),
    (StreamProxy, stream_dict()),
    (Certificate, certificate_dict()),
    (AccessList, access_list_dict()),
]


def errors(model: type[Entity], data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return {e["field"]: e["reason"] for e in field_errors(info.value)}


def test_every_kind_has_an_example() -> None:
    assert {m for m, _ in EXAMPLES} == set(KINDS)


@pytest.mark.parametrize(("model", "data"), EXAMPLES, ids=lambda x: getattr(x, "__name__", ""))
def test_valid_example_round_trips(model: type[Entity], data: dict[str, Any]) -> None:
    entity = model.model_validate(data)
    assert entity.schema_version == SCHEMA_VERSION
    stored = to_crdt(entity)
    again = model.model_validate(stored)
    assert again == entity
    assert to_crdt(again) == stored


@pytest.mark.parametrize(("model", "data"), EXAMPLES, ids=lambda x: getattr(x, "__name__", ""))
def test_models_are_frozen(model: type[Entity], data: dict[str, Any]) -> None:
    entity = model.model_validate(data)
    with pytest.raises(ValidationError):
        entity.id = "other"


def test_unknown_fields_from_a_newer_version_survive_a_round_trip() -> None:
    data = vhost_dict(schema_version=2, rate_limit={"rps": 10, "burst": 20})
    data["locations"][0]["cache"] = {"ttl": "5m"}
    data["tls"]["ocsp_stapling"] = True
    vh = VirtualHost.model_validate(data)
    assert vh.schema_version == 2
    assert vh.unknown_fields() == {"rate_limit": {"rps": 10, "burst": 20}}
    assert vh.locations[0].unknown_fields() == {"cache": {"ttl": "5m"}}
    stored = to_crdt(vh)
    assert stored["rate_limit"] == {"rps": 10, "burst": 20}
    assert stored["locations"][0]["cache"] == {"ttl": "5m"}
    assert stored["tls"]["ocsp_stapling"] is True
    # an edit made by this (older) version keeps them too
    edited = vh.model_copy(update={"name": "Renamed"})
    assert to_crdt(edited)["rate_limit"] == {"rps": 10, "burst": 20}


def test_upstream_rules() -> None:
    assert errors(Upstream, upstream_dict(method="hash")) == {
        "hash_key": "is required when method is 'hash'",
        "servers": "server [2]: backup servers cannot be used with hash",
    }
    assert errors(Upstream, upstream_dict(hash_key="$uri"))["hash_key"] == (
        "is only used when method is 'hash'"
    )
    assert "consistent" in errors(Upstream, upstream_dict(consistent=True))
    assert errors(Upstream, upstream_dict(servers=[]))["servers"].startswith("tuple should have")
    bad = upstream_dict()
    bad["servers"][1]["address"] = "app2.internal"
    bad["servers"][0]["weight"] = 0
    bad["servers"][2]["fail_timeout"] = "soon"
    got = errors(Upstream, bad)
    assert set(got) == {"servers[0].weight", "servers[1].address", "servers[2].fail_timeout"}
    assert "host:port" in got["servers[1].address"]
    dup = upstream_dict(servers=[{"address": "a.b:1"}, {"address": "A.B:1"}])
    assert "repeats address a.b:1" in errors(Upstream, dup)["servers"]
    only_backup = upstream_dict(servers=[{"address": "a.b:1", "backup": True}])
    assert "not be a backup" in errors(Upstream, only_backup)["servers"]
    assert "next_upstream.on[0]" in errors(Upstream, upstream_dict(next_upstream={"on": ["x"]}))
    ok = Upstream.model_validate(
        upstream_dict(
            method="hash",
            hash_key="$request_uri",
            consistent=True,
            servers=[{"address": "10.0.0.1:80"}],
        )
    )
    assert ok.consistent


def test_vhost_rules() -> None:
    got = errors(VirtualHost, vhost_dict(tls={"mode": "manual", "http2": True}))
    assert got == {"tls.certificate": "is required when mode is 'manual'"}
    got = errors(VirtualHost, vhost_dict(tls={"mode": "off", "redirect_http": True, "hsts": {}}))
    assert got == {
        "tls.redirect_http": "needs TLS (mode 'manual' or 'acme')",
        "tls.hsts": "needs TLS (mode 'manual' or 'acme')",
    }
    got = errors(VirtualHost, vhost_dict(tls={"mode": "acme"}))
    assert "wildcard" in got["tls"]
    assert "server_names" in errors(VirtualHost, vhost_dict(server_names=[]))
    assert (
        "repeat" in errors(VirtualHost, vhost_dict(server_names=["a.com", "A.com"]))["server_names"]
    )
    locs = [
        {"path": "/", "action": "proxy"},
        {"path": "/r", "action": "return", "status": 302},
        {"path": "/t", "action": "return", "status": 200, "url": "/x", "upstream": "app"},
        {"path": "/s", "action": "static", "root": "relative"},
        {"path": "/s", "action": "teleport"},
    ]
    got = errors(VirtualHost, vhost_dict(locations=locs))
    assert got == {
        "locations[0].upstream": "is required when action is 'proxy'",
        "locations[1].url": "is required with status 302",
        "locations[2].upstream": "is only used when action is 'proxy'",
        "locations[2].url": "is only used by a 'return' with a redirect status (301-308)",
        "locations[3].root": "must be an absolute path",
        "locations[4].action": "input should be 'proxy', 'return' or 'static'",
    }
    dup = [{"path": "/", "root": "/srv", "action": "static"}] * 2
    assert "repeats prefix path /" in errors(VirtualHost, vhost_dict(locations=dup))["locations"]
    got = errors(VirtualHost, vhost_dict(response_headers={"X-A": "1", "x-a": "2"}))
    assert "given twice" in got["response_headers"]
    got = errors(VirtualHost, vhost_dict(client_max_body_size="lots", proxy_read_timeout=0))
    assert set(got) == {"client_max_body_size", "proxy_read_timeout"}
    assert "greater than zero" in got["proxy_read_timeout"]


def test_stream_certificate_access_list_and_settings_rules() -> None:
    got = errors(StreamProxy, stream_dict(port=0, protocol="sctp", upstream="UP"))
    assert set(got) == {"port", "protocol", "upstream"}
    got = errors(Certificate, certificate_dict(names=["example.*"], not_after="2024-01-01T00:00"))
    assert "trailing wildcard" in got["names"]
    assert "timezone" in got["not_after"]
    got = errors(Certificate, certificate_dict(not_after="2024-01-01T00:00:00Z"))
    assert got == {"not_after": "must be later than not_before"}
    assert "fingerprint" in errors(Certificate, certificate_dict(fingerprint="zz"))
    got = errors(AccessList, access_list_dict(rules=[{"action": "allow", "source": "10.1.0.0/8"}]))
    assert "host bits" in got["rules[0].source"]
    got = errors(MeshSettings, {"entry_points": {"a": {"port": 80}, "b": {"port": 80}}})
    assert "same port 80" in got["entry_points"]
    got = errors(MeshSettings, {"entry_points": {"Bad Name": {"port": 80}}})
    assert list(got) == ['entry_points["Bad Name"]<key>']
    assert MeshSettings().entry_points["https"].port == 443


def test_parse_raises_schema_error_with_field_items() -> None:
    with pytest.raises(SchemaError) as info:
        parse(Upstream, upstream_dict(servers=[{"address": "x"}]), prefix="body")
    assert info.value.errors == [
        {
            "field": "body.servers[0].address",
            "reason": "must be host:port (e.g. 10.0.0.5:8080 or app.internal:80)",
        }
    ]
    assert "body.servers[0].address" in str(info.value)


def test_missing_fields_are_named() -> None:
    got = errors(VirtualHost, {"id": "v"})
    assert got == {
        "name": "is required",
        "server_names": "is required",
        "locations": "is required",
    }


def test_examples_are_not_mutated_by_validation() -> None:
    data = vhost_dict()
    before = copy.deepcopy(data)
    VirtualHost.model_validate(data)
    assert data == before
