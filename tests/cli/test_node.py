"""``nxmesh assign``, ``nxmesh label`` and the workspaces column of ``nxmesh members``,
against a served API (assignments written in its real mesh document)."""

from __future__ import annotations

from typing import Any

from tests.cli.conftest import Node
from tests.cli.test_errors import one_line


def node_as_api_shows_it(node: Node, name: str) -> Any:
    with node.served.sync_client() as client:
        return client.get(f"/v1/nodes/{name}").json()


def members_table(node: Node) -> dict[str, list[str]]:
    lines = node.ok("members").out.splitlines()
    assert lines[0].split() == [
        "NAME", "STATE", "ADDRESS", "WORKSPACES", "APPLY", "REVISION", "KEY"
    ]  # fmt: skip
    return {line.split()[0]: line.split() for line in lines[1:]}


def test_assign_replaces_the_workspaces_a_node_serves(seeded: Node) -> None:
    staging = seeded.ok("workspace", "create", "staging", "--json").json()["id"]
    default = seeded.ok("workspace", "show", "default", "--json").json()["id"]
    assert members_table(seeded)["node2"][3] == "-"

    out = seeded.ok("assign", "node2", "default").out
    assert out == f"node2 serves default ({default})\n"
    assert node_as_api_shows_it(seeded, "node2")["workspaces"] == [default]
    shown = seeded.ok("assign", "node2", staging, "default", "--json").json()
    assert shown["name"] == "node2"
    assert shown["workspaces"] == sorted([default, staging])
    assert members_table(seeded)["node2"][3] == ",".join(
        {default: "default", staging: "staging"}[w] for w in shown["workspaces"]
    )

    assert seeded.ok("assign", "node2", "--all").out == "node2 serves every workspace\n"
    assert node_as_api_shows_it(seeded, "node2")["workspaces"] == ["*"]
    assert members_table(seeded)["node2"][3] == "*"
    assert seeded.ok("members", "--json").json()[1]["workspaces"] == ["*"]

    assert seeded.ok("assign", "node2", "--none").out == "node2 serves no workspace\n"
    assert node_as_api_shows_it(seeded, "node2")["workspaces"] == []


def test_assign_refusals_are_one_line(seeded: Node) -> None:
    seeded.ok("assign", "node2", "default")
    for args in (("node2",), ("node2", "default", "--all"), ("node2", "--all", "--none")):
        line = one_line(seeded("assign", *args), 2)
        assert "give WORKSPACE names or ids, --all or --none (exactly one)" in line
        assert "see 'nxmesh assign --help'" in line
    line = one_line(seeded("assign", "node2", "default", "nope"))
    assert line == "Error: invalid input: workspaces[1]: no workspace has the id or name 'nope'"
    line = one_line(seeded("assign", "node2", "*", "default"))
    assert "workspaces[0]: '*' (every workspace) must be alone in the list" in line
    line = one_line(seeded("assign", "ghost", "--all"))
    assert "node 'ghost' is not a member" in line
    seeded.ok("revoke", "node3", "--yes")
    line = one_line(seeded("assign", "node3", "--all"))
    assert "node3 is revoked" in line
    default = seeded.ok("workspace", "show", "default", "--json").json()["id"]
    assert node_as_api_shows_it(seeded, "node2")["workspaces"] == [default]  # unchanged


def test_label_replaces_the_labels(seeded: Node) -> None:
    out = seeded.ok("label", "node2", "zone=c", "tier=edge", "flag=", "bare").out
    assert out == "node2 labels: bare= flag= tier=edge zone=c\n"
    labels = {"zone": "c", "tier": "edge", "flag": "", "bare": ""}
    assert node_as_api_shows_it(seeded, "node2")["labels"] == labels
    shown = seeded.ok("label", "node2", "zone=d", "--json").json()
    assert shown["labels"] == {"zone": "d"}
    assert seeded.ok("label", "node2").out == "node2 has no labels\n"
    assert node_as_api_shows_it(seeded, "node2")["labels"] == {}

    line = one_line(seeded("label", "node2", "Bad Key=x"))
    assert line.startswith("Error: invalid input: labels: ")
    assert "'Bad Key'" in line
    line = one_line(seeded("label", "node2", "zone=a", "zone=b"), 2)
    assert "label 'zone' is given twice" in line
    line = one_line(seeded("label", "node2", "=x"), 2)
    assert "a label is KEY=VALUE, KEY= or KEY" in line
    line = one_line(seeded("label", "ghost", "a=b"))
    assert "node 'ghost' is not a member" in line
    assert node_as_api_shows_it(seeded, "node2")["labels"] == {}
