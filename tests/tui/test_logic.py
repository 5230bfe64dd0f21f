"""The console's pure parts: the convergence line, member events, event lines, where a
field error goes, request bodies from forms, roles, expiry, error messages."""

from __future__ import annotations

import errno
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from tui.bodies import (
    UpstreamValues,
    VhostValues,
    format_servers,
    parse_servers,
    upstream_body,
    vhost_body,
)
from tui.client import FieldError, problem_error, unreachable_message
from tui.events_log import describe
from tui.field_errors import assign_errors
from tui.fleet import Member, Quarantine, convergence_line, merge_member_event
from tui.roles import Role, role_of_status
from tui.timefmt import expiry
from tui.widgets.config_viewer import config_label


def member(name: str, state: str = "alive", digest: str = "aaaa1111bbbb", **kw: object) -> Member:
    return Member(name=name, state=state, digest=digest, **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------- convergence


def test_convergence_counts_nodes_on_the_most_common_state() -> None:
    line = convergence_line([member("a"), member("b"), member("c", digest="cccc2222dddd")])
    assert line.startswith("2/3 nodes on state aaaa1111…, 1 other state")


def test_convergence_names_the_local_quarantine_by_entity_name() -> None:
    members = [member("a", apply="quarantined", quarantined=1), member("b")]
    line = convergence_line(
        members,
        local="a",
        quarantined=[Quarantine("default/vhost/v1", "upstream 'gone' is missing")],
        names={"default/vhost/v1": "shop"},
    )
    assert line == "2/2 nodes on state aaaa1111…, 1 quarantined: shop - upstream 'gone' is missing"


def test_convergence_counts_a_remote_quarantine_and_failures_and_the_unreachable() -> None:
    members = [
        member("a"),
        member("b", apply="quarantined", quarantined=2),
        member("c", apply="failed", reason="nginx -t failed"),
        member("d", state="suspect"),
        member("e", state="dead"),
        member("f", state="left"),
        member("g", state="revoked"),
    ]
    line = convergence_line(members, local="a")
    assert line.startswith("3/5 nodes on state aaaa1111…")  # left and revoked do not count
    assert "1 quarantined: b - 2 units" in line
    assert "1 failed: c - nginx -t failed" in line
    assert "1 suspect: d" in line
    assert line.endswith("1 dead: e")


def test_convergence_per_workspace_when_nodes_serve_different_workspaces() -> None:
    # a and b serve "shop", c serves "blog" too; whole-state digests all differ by design.
    members = [
        member("a", digest="a1", workspaces={"w1": "11111111"}),
        member("b", digest="b1", workspaces={"w1": "11111111"}),
        member("c", digest="c1", workspaces={"w1": "11111111", "w2": "22222222"}),
    ]
    names = {"w1": "shop", "w2": "blog"}
    assert convergence_line(members, workspace_names=names) == ("3/3 nodes current on 2 workspaces")
    members.append(member("d", digest="d1", workspaces={"w1": "0000aaaa"}))
    line = convergence_line(members, workspace_names=names)
    assert line == "3/4 nodes current on 2 workspaces, behind on shop"
    # b serves no workspace: nothing to be behind on.
    one = [member("a", digest="a1", workspaces={"w1": "11111111"}), member("b", digest="b1")]
    assert convergence_line(one) == "2/2 nodes on state 11111111"


def test_convergence_before_anything_applied() -> None:
    assert convergence_line([member("a", digest="")]) == "0/1 nodes have applied a state yet"
    assert convergence_line([]) == "no members yet"


def test_a_member_event_updates_state_and_metadata_and_adds_a_newcomer() -> None:
    before = [member("a"), member("b")]
    after = merge_member_event(
        before,
        {"type": "member", "event": "suspect", "node": "b", "state": "suspect",
         "metadata": {"apply": "failed", "revision": "r2", "state": "d2"}},
    )  # fmt: skip
    assert [(m.name, m.state, m.apply, m.revision) for m in after] == [
        ("a", "alive", "", ""),
        ("b", "suspect", "failed", "r2"),
    ]
    joined = merge_member_event(after, {"event": "joined", "node": "c", "state": "alive"})
    assert [m.name for m in joined] == ["a", "b", "c"]
    # API events (labels, revoked) carry no state: the list is re-read instead.
    assert merge_member_event(before, {"op": "revoked", "node": "b"}) == before


# ---------------------------------------------------------------- event lines


def test_event_lines_for_joins_failures_reloads_and_edits() -> None:
    def line(event: dict[str, Any], previous: Member | None = None) -> str:
        entry = describe(event, previous=previous, local="n1", now=5.0)
        assert entry is not None
        return f"{entry.kind}: {entry.shown({'vhosts/v1': 'shop'})}"

    assert line({"type": "member", "event": "joined", "node": "n3", "address": "h:1"}) == (
        "join: n3 joined (h:1)"
    )
    assert line({"type": "member", "event": "dead", "node": "n2"}) == "dead: n2 is dead"
    assert line({"type": "member", "op": "revoked", "node": "n2"}) == "revoke: n2 was revoked"
    assert line({"type": "member", "op": "workspaces", "node": "n2"}) == (
        "assign: n2 now serves other workspaces"
    )
    assert line({"type": "apply", "node": "n1", "state": "failed", "summary": "failed: test",
                 "nginx_message": "emerg: unknown directive\nmore"}) == (
        "failed: failed: test - nginx: emerg: unknown directive"
    )  # fmt: skip
    assert line({"type": "change", "resource": "vhosts", "id": "v1", "op": "updated",
                 "fields": ["server_names"], "node": "n2"}) == (
        "edit: vhost shop updated (server_names) via n2"
    )  # fmt: skip
    assert (
        line(
            {"type": "member", "event": "updated", "node": "n2", "metadata": {"revision": "new1"}},
            previous=Member("n2", revision="old1"),
        )
        == "reload: applied revision new1"
    )


def test_unremarkable_events_make_no_line() -> None:
    def entry(event: dict[str, Any], previous: Member | None = None) -> object:
        return describe(event, previous=previous, local="n1", now=0.0)

    assert entry({"type": "heartbeat"}) is None
    assert (
        entry({"type": "member", "event": "alive", "node": "a"}, Member("a", state="alive")) is None
    )
    same = {"type": "member", "event": "updated", "node": "a", "metadata": {"revision": "r"}}
    assert entry(same, Member("a", revision="r")) is None
    assert entry(same, None) is None  # never seen: nothing to compare with


def test_an_edit_line_says_who_made_it_and_through_which_node() -> None:
    alice = {"node": "node-1", "user": "alice", "role": "operator"}
    event = {"type": "change", "origin": "peer", "resource": "vhosts", "id": "v1",
             "name": "shop", "op": "updated", "fields": ["server_names"], "node": "node-1",
             "changed_by": alice}  # fmt: skip
    entry = describe(event, previous=None, local="n2", now=0.0)
    assert entry is not None
    assert (entry.kind, entry.node) == ("edit", "node-1")
    assert entry.shown({}) == "vhost shop updated (server_names) by alice (operator) via node-1"
    gone = {**event, "op": "deleted", "fields": [], "name": "old-shop"}
    deleted = describe(gone, previous=None, local="n2", now=0.0)
    assert deleted is not None
    assert deleted.shown({"vhosts/v1": "shop"}) == (
        "vhost old-shop deleted by alice (operator) via node-1"
    )
    # a peer's update is told by its change lines; a local commit is not "from a peer"
    for document in ({"origin": "peer", "changes": 1}, {"origin": "local", "changes": 0}):
        assert describe({"type": "document", "document": "mesh", **document},
                        previous=None, local="n2", now=0.0) is None  # fmt: skip
    older = describe({"type": "document", "document": "mesh"}, previous=None, local="n2", now=0)
    assert older is not None
    assert older.kind == "sync"


def test_an_entity_is_named_once_its_name_is_known() -> None:
    event = {"type": "change", "resource": "upstreams", "id": "u9", "op": "created", "node": "n1"}
    entry = describe(event, previous=None, local="n1", now=0.0)
    assert entry is not None
    assert entry.shown({}) == "upstream u9 created via n1"
    assert entry.shown({"upstreams/u9": "app"}) == "upstream app created via n1"


# ---------------------------------------------------------------- forms


def test_field_errors_go_to_the_field_that_edits_their_path() -> None:
    errors = [
        FieldError("server_names[1]", "host name must not contain spaces"),
        FieldError("locations[0].upstream", "refers to upstream 'x', which does not exist"),
        FieldError("locations[0]", "a proxy location needs an upstream"),
        FieldError("tls.certificate", "unknown certificate"),
    ]
    fields = {
        "server_names": ("server_names",),
        "upstream": ("locations[0].upstream", "locations[0]"),
        "path": ("locations[0].path", "locations"),
    }
    placed, unplaced = assign_errors(errors, fields)
    assert placed == {
        "server_names": ["#2: host name must not contain spaces"],
        "upstream": ["refers to upstream 'x', which does not exist",
                     "a proxy location needs an upstream"],
    }  # fmt: skip
    assert unplaced == ["tls.certificate: unknown certificate"]


def test_a_new_vhost_body_and_an_edit_that_sends_only_what_changed() -> None:
    values = VhostValues("shop", "shop.example.test, www.shop.example.test", "app", path="/")
    assert vhost_body(values, None) == {
        "name": "shop",
        "server_names": ["shop.example.test", "www.shop.example.test"],
        "entry_points": ["http"],
        "enabled": True,
        "websocket": False,
        "description": "",
        "locations": [{"path": "/", "upstream": "app"}],
    }
    stored = {
        "id": "v1", "name": "shop", "server_names": ["shop.example.test"], "enabled": True,
        "entry_points": ["http"], "websocket": False, "description": "",
        "locations": [{"path": "/", "upstream": "app", "action": "proxy", "match": "prefix"},
                      {"path": "/static", "action": "static", "root": "/srv"}],
    }  # fmt: skip
    edited = VhostValues("shop", "shop.example.test", "api", path="/")
    assert vhost_body(edited, stored) == {
        "locations": [
            {"path": "/", "upstream": "api", "action": "proxy", "match": "prefix"},
            {"path": "/static", "action": "static", "root": "/srv"},  # kept as it was
        ]
    }
    assert vhost_body(VhostValues.of(stored), stored) == {}


def test_servers_text_round_trips_and_unknown_options_are_reported() -> None:
    servers = [
        {"address": "10.0.0.1:80", "weight": 1, "max_fails": 1, "fail_timeout": 10.0},
        {"address": "10.0.0.2:80", "weight": 3, "max_fails": 1, "fail_timeout": 30.0,
         "backup": True},
    ]  # fmt: skip
    text = format_servers(servers)
    assert text == "10.0.0.1:80\n10.0.0.2:80 weight=3 fail_timeout=30 backup"
    parsed, errors = parse_servers(text + "\n10.0.0.3:80 wieght=2")
    assert errors == [FieldError("servers[2]", errors[0].reason)]
    assert "'wieght=2' is not one of" in errors[0].reason
    assert parsed[1] == {"address": "10.0.0.2:80", "weight": 3, "fail_timeout": 30, "backup": True}


def test_an_upstream_edit_sends_only_what_changed() -> None:
    stored = {"id": "u", "name": "app", "servers": [{"address": "a:1"}], "method": "round_robin",
              "hash_key": None, "keepalive": 0, "description": ""}  # fmt: skip
    values = UpstreamValues.of(stored)
    assert upstream_body(values, stored) == ({}, [])
    changed = UpstreamValues("app", "a:1\nb:2", "least_conn", "", "16", "")
    body, errors = upstream_body(changed, stored)
    assert errors == []
    assert body == {"servers": [{"address": "a:1"}, {"address": "b:2"}], "method": "least_conn",
                    "keepalive": 16}  # fmt: skip


# ---------------------------------------------------------------- roles, times, errors


def test_the_role_comes_from_the_status() -> None:
    assert role_of_status({"api": {"caller": {"uid": 1, "role": "operator"}}}) == Role.operator
    assert role_of_status({}) == Role.viewer
    assert Role.viewer.can_edit is False
    assert Role.operator.can_edit
    assert not Role.operator.can_admin
    assert Role.admin.can_admin


def test_certificate_expiry() -> None:
    now = datetime(2027, 1, 15, tzinfo=UTC).timestamp()
    assert expiry(None, None, now) == ("-", "pending")
    assert expiry("2026-12-01T00:00:00Z", "2027-03-15T00:00:00Z", now) == ("in 59 days", "valid")
    assert expiry("2026-12-01T00:00:00Z", "2027-01-20T00:00:00Z", now) == ("in 5 days", "expiring")
    assert expiry(None, "2027-01-14T12:00:00Z", now) == ("expired 12 hours ago", "expired")
    assert expiry("2027-02-01T00:00:00Z", "2027-05-01T00:00:00+00:00", now)[1] == "not yet valid"


def test_unreachable_daemon_messages_say_what_to_do() -> None:
    sock = Path("/srv/node/api.sock")

    def transport(code: int) -> httpx.ConnectError:
        error = httpx.ConnectError("failed")
        error.__cause__ = OSError(code, "x")
        return error

    assert unreachable_message(sock, None).startswith("no daemon socket at /srv/node/api.sock")
    assert "nxmesh run" in unreachable_message(sock, transport(errno.ECONNREFUSED))
    denied = unreachable_message(sock, transport(errno.EACCES))
    assert denied.startswith("permission denied on /srv/node/api.sock: uid ")
    assert "must be root or in" in denied


def test_problem_documents_become_one_line_errors_with_fields() -> None:
    error = problem_error(
        422,
        {"type": "urn:nxmesh:problem:validation", "status": 422, "detail": "invalid",
         "errors": [{"field": "name", "reason": "must not be empty"}]},
    )  # fmt: skip
    assert (error.kind, error.message) == ("validation", "invalid input: name: must not be empty")
    assert error.errors == (FieldError("name", "must not be empty"),)
    forbidden = problem_error(
        403,
        {"type": "urn:nxmesh:problem:forbidden", "detail": "creating an invite needs admin",
         "required_role": "admin", "role": "viewer"},
    )  # fmt: skip
    assert forbidden.forbidden
    assert forbidden.message.endswith("(needs the admin role; yours: viewer)")
    assert problem_error(502, "oops").message == "the daemon answered HTTP 502"


def test_rendered_files_are_labelled_by_what_they_hold() -> None:
    names = {"vhosts/v1": "shop"}
    assert config_label("http.d/default/vhosts/v1.conf", names) == "default: vhost shop"
    assert config_label("http.d/default/vhosts/v2.conf", names) == "default: vhost v2"
    assert config_label("http.d/default/upstreams.conf", names) == "default: upstreams"
    assert config_label("http.d/_tls.conf", names) == "http.d/_tls.conf"
