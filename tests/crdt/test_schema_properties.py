"""The strategies render/ will use generate only valid models; dumps round-trip."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crdt.schema import (
    Upstream,
    VirtualHost,
    WorkspaceState,
    read_entity,
    to_crdt,
    validate_references,
)
from tests.crdt.strategies import (
    server_addresses,
    server_names,
    upstream_dicts,
    vhost_dicts,
    workspace_states,
)

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(upstream_dicts())
def test_generated_upstreams_validate_and_round_trip(data: dict[str, Any]) -> None:
    up = Upstream.model_validate(data)
    stored = json.loads(json.dumps(to_crdt(up)))
    assert read_entity(Upstream, stored, up.id) == up


@FAST
@given(vhost_dicts(["app", "api"]))
def test_generated_vhosts_validate_and_round_trip(data: dict[str, Any]) -> None:
    vh = VirtualHost.model_validate(data)
    stored = json.loads(json.dumps(to_crdt(vh)))
    assert read_entity(VirtualHost, stored, vh.id) == vh


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workspace_states())
def test_generated_workspaces_have_no_broken_references(state: WorkspaceState) -> None:
    assert validate_references(state) == []


@FAST
@given(st.text(max_size=40))
def test_arbitrary_text_never_crashes_readers_and_valid_names_are_safe(text: str) -> None:
    for field, value in (
        ("server_names", [text]),
        ("locations", [{"path": text, "root": "/x", "action": "static"}]),
    ):
        got = read_entity(
            VirtualHost,
            {
                "id": "v",
                "name": "n",
                "server_names": ["a.b"],
                "locations": [{"path": "/", "action": "static", "root": "/x"}],
                field: value,
            },
        )
        if isinstance(got, VirtualHost):
            for name in got.server_names:
                assert name.isascii()
                assert not set(name) & set(" ;{}$\"'\\\n")


@FAST
@given(server_names, server_addresses)
def test_generated_names_and_addresses_are_valid(name: str, address: str) -> None:
    from pydantic import TypeAdapter

    from crdt.schema import ServerAddress, ServerName

    assert TypeAdapter(ServerName).validate_python(name) == name.lower()
    assert TypeAdapter(ServerAddress).validate_python(address)
