"""The CRUD verbs: the README example, tables, --json, name-or-id, workspace choice."""

from __future__ import annotations

import os
import pwd

from tests.cli.conftest import Node, run_nxmesh


def test_the_readme_example(seeded: Node) -> None:
    made = seeded.ok(
        "upstream", "create", "app", "--server", "127.0.0.1:9001", "--server", "127.0.0.1:9002"
    )
    assert made.out.startswith("created upstream app (")
    made = seeded.ok(
        "vhost", "create", "shop", "--server-name", "shop.example.test", "--upstream", "app"
    )
    assert made.out.startswith("created virtual host shop (")

    upstream = seeded.ok("upstream", "show", "app", "--json").json()
    assert [s["address"] for s in upstream["servers"]] == ["127.0.0.1:9001", "127.0.0.1:9002"]
    vhost = seeded.ok("vhost", "show", "shop", "--json").json()
    assert vhost["server_names"] == ["shop.example.test"]
    assert vhost["locations"] == [
        {**vhost["locations"][0], "path": "/", "action": "proxy", "upstream": upstream["id"]}
    ]
    table = seeded.ok("vhost", "list").out.splitlines()
    assert table[0].split() == ["NAME", "ID", "SERVER", "NAMES", "UPSTREAMS", "ENABLED"]
    assert table[1].split() == ["shop", vhost["id"], "shop.example.test", "app", "yes"]


def test_json_on_every_read_verb(seeded: Node) -> None:
    seeded.ok("upstream", "create", "app", "--server", "10.0.0.1:80")
    for group, name in (("org", "acme"), ("workspace", "default"), ("upstream", "app")):
        items = seeded.ok(group, "list", "--json").json()
        assert [i["name"] for i in items] == [name]
        shown = seeded.ok(group, "show", name, "--json").json()
        assert shown == items[0]
        assert seeded.ok(group, "show", shown["id"], "--json").json() == shown  # by id too
    assert seeded.ok("vhost", "list", "--json").json() == []


def test_update_and_delete(seeded: Node) -> None:
    seeded.ok("upstream", "create", "app", "--server", "10.0.0.1:80")
    seeded.ok("upstream", "create", "api", "--server", "10.0.0.2:80", "--method", "least_conn")
    seeded.ok("vhost", "create", "shop", "--server-name", "shop.example.test", "--upstream", "app")
    seeded.ok("upstream", "update", "app", "--add-server", "10.0.0.3:80,weight=3,backup")
    servers = seeded.ok("upstream", "show", "app", "--json").json()["servers"]
    assert [(s["address"], s["weight"], s["backup"]) for s in servers] == [
        ("10.0.0.1:80", 1, False),
        ("10.0.0.3:80", 3, True),
    ]
    seeded.ok(
        "vhost", "update", "shop", "--upstream", "api", "--add-server-name", "www.shop.example.test"
    )
    api_id = seeded.ok("upstream", "show", "api", "--json").json()["id"]
    assert [
        v["name"] for v in seeded.ok("vhost", "list", "--upstream", "api", "--json").json()
    ] == ["shop"]
    vhost = seeded.ok("vhost", "show", "shop", "--json").json()
    assert vhost["locations"][0]["upstream"] == api_id
    assert vhost["server_names"] == ["shop.example.test", "www.shop.example.test"]
    seeded.ok("upstream", "delete", "app")  # no longer used
    assert seeded.ok("vhost", "delete", "shop").out.startswith("deleted virtual host shop")
    assert [u["name"] for u in seeded.ok("upstream", "list", "--json").json()] == ["api"]


def test_workspace_choice(seeded: Node) -> None:
    seeded.ok("workspace", "create", "staging")
    seeded.ok("upstream", "create", "app", "--server", "10.0.0.1:80")  # 'default' is chosen
    assert seeded.ok("upstream", "list", "--json", "-w", "staging").json() == []
    assert len(seeded.ok("upstream", "list", "--json", NXMESH_WORKSPACE="default").json()) == 1
    seeded.ok("upstream", "create", "app", "--server", "10.0.0.9:80", NXMESH_WORKSPACE="staging")
    staged = seeded.ok("upstream", "show", "app", "--json", "--workspace", "staging").json()
    assert staged["servers"][0]["address"] == "10.0.0.9:80"
    seeded.ok("workspace", "update", "default", "--name", "prod")
    several = seeded("upstream", "list")
    assert several.code == 1
    assert "several workspaces (prod, staging)" in several.err


def test_state_dir_flag_and_help(seeded: Node) -> None:
    listed = run_nxmesh(None, "org", "list", "--json", "--state-dir", str(seeded.state_dir))
    assert listed.code == 0
    assert listed.json()[0]["name"] == "acme"
    top = run_nxmesh(None, "--help")
    for group in ("org", "workspace", "upstream", "vhost"):
        assert group in top.out
    sub = run_nxmesh(None, "upstream", "create", "--help")
    assert "--server" in sub.out
    assert "NXMESH_STATE_DIR" in sub.out


def test_show_and_audit_say_who_changed_what(seeded: Node) -> None:
    seeded.ok("upstream", "create", "app", "--server", "10.0.0.1:80")
    seeded.ok("upstream", "update", "app", "--keepalive", "8")
    shown = seeded.ok("upstream", "show", "app").out.splitlines()
    me = pwd.getpwuid(os.getuid()).pw_name  # the daemon's own user: admin
    assert shown[-1].split()[:6] == ["changed", me, "(admin)", "via", "node1", "at"]
    seeded.ok("upstream", "delete", "app")
    rows = [line.split() for line in seeded.ok("audit").out.splitlines()]
    assert rows[0] == ["WHEN", "OP", "WHAT", "BY", "VIA"]
    assert [(r[1], r[2], r[3], r[-1]) for r in rows[1:]] == [
        ("deleted", "upstreams", "app", "node1"),
        ("updated", "upstreams", "app", "node1"),
        ("created", "upstreams", "app", "node1"),
    ]
    mesh = seeded.ok("audit", "--mesh", "--json").json()
    assert [(i["op"], i["resource"], i["name"]) for i in mesh] == [
        ("created", "workspaces", "default"),
        ("created", "organizations", "acme"),
    ]
