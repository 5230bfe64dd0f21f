"""Cross-entity rules: references must exist, listeners must not clash."""

from __future__ import annotations

from dataclasses import replace

from crdt.schema import (
    MeshSettings,
    StreamProxy,
    Upstream,
    VirtualHost,
    WorkspaceState,
    validate_references,
)
from tests.crdt.strategies import sample_state, stream_dict, upstream_dict, vhost_dict


def paths(state: WorkspaceState, settings: MeshSettings | None = None) -> dict[str, str]:
    return {p.path: p.reason for p in validate_references(state, settings)}


def test_sample_workspace_is_consistent() -> None:
    assert validate_references(sample_state(), MeshSettings()) == []


def test_missing_references_are_named() -> None:
    state = replace(sample_state(), upstreams={}, certificates={}, access_lists={})
    assert paths(state) == {
        "virtual_hosts.web.locations[0].upstream": "refers to upstream 'app', which does not exist",
        "virtual_hosts.web.tls.certificate": "refers to certificate 'cert1', which does not exist",
        "virtual_hosts.web.access_list": "refers to access list 'office', which does not exist",
        "streams.dns.upstream": "refers to upstream 'app', which does not exist",
    }


def test_entry_points_must_exist_and_fit_tls() -> None:
    vh = VirtualHost.model_validate(vhost_dict(entry_points=["http", "alt"]))
    state = replace(sample_state(), virtual_hosts={"web": vh})
    assert paths(state, MeshSettings()) == {
        "virtual_hosts.web.entry_points[1]": "refers to entry point 'alt', which does not exist",
        "virtual_hosts.web.entry_points": "TLS needs an https entry point",
    }
    plain = VirtualHost.model_validate(vhost_dict(tls={"mode": "off"}, entry_points=["https"]))
    state = replace(sample_state(), virtual_hosts={"web": plain})
    assert paths(state, MeshSettings()) == {
        "virtual_hosts.web.tls.mode": "https entry points need TLS"
    }


def test_streams_cannot_use_http_only_balancing_or_clash() -> None:
    ip_hash = Upstream.model_validate(
        upstream_dict(id="iph", method="ip_hash", servers=[{"address": "a.b:1"}])
    )
    by_uri = Upstream.model_validate(
        upstream_dict(
            id="uri", method="hash", hash_key="$request_uri", servers=[{"address": "a.b:1"}]
        )
    )
    streams = {
        "s1": StreamProxy.model_validate(stream_dict(id="s1", upstream="iph", port=9000)),
        "s2": StreamProxy.model_validate(stream_dict(id="s2", upstream="uri", port=9001)),
        "s3": StreamProxy.model_validate(stream_dict(id="s3", protocol="tcp", port=443)),
        "s4": StreamProxy.model_validate(stream_dict(id="s4", port=9000, address="127.0.0.1")),
        "s5": StreamProxy.model_validate(stream_dict(id="s5", port=9000, protocol="tcp")),
    }
    state = replace(
        sample_state(),
        upstreams={**sample_state().upstreams, "iph": ip_hash, "uri": by_uri},
        streams=streams,
    )
    assert paths(state, MeshSettings()) == {
        "streams.s1.upstream": "upstream 'iph' uses ip_hash (HTTP only)",
        "streams.s2.upstream": "upstream 'uri' hashes on HTTP-only $request_uri",
        "streams.s3.port": "tcp port 443 is already used by entry point 'https'",
        "streams.s4.port": "udp port 9000 is already used by stream 's1'",
    }


def test_key_mismatch_and_without() -> None:
    state = sample_state()
    state = replace(state, upstreams={"wrong": state.upstreams["app"]})
    problems = validate_references(state)
    assert {p.path for p in problems} == {
        "upstreams.wrong.id",
        "virtual_hosts.web.locations[0].upstream",
        "streams.dns.upstream",
    }
    pruned = state.without(problems)
    assert pruned.upstreams == {}
    assert pruned.virtual_hosts == {}
    assert pruned.streams == {}
    assert set(pruned.certificates) == {"cert1"}
    assert problems[0].as_field_error()["field"] == problems[0].path
