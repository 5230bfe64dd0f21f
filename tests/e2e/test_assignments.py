"""Workspace assignment through the API, with two real daemons (``nxmesh run`` child
processes, render-only): a node assigned one workspace through the other node's API
renders nothing of a second workspace and never stores its document; assigned both, it
fetches and renders the second one too."""

from __future__ import annotations

import pytest

from crdt.documents import workspace_document
from crdt.store import Store
from node.localmesh import LocalNode, until
from node.statedir import StateDir
from tests.e2e.test_node_reports import add_site, get, ok, on_disk

pytestmark = pytest.mark.slow


def stored_documents(node: LocalNode) -> list[str]:
    """The documents in the node's store (read-only, beside the running daemon)."""
    with Store.open(StateDir.at(node.state).store, read_only=True) as store:
        return store.documents()


def test_a_node_renders_only_the_workspaces_it_is_assigned(
    pair: tuple[LocalNode, LocalNode],
) -> None:
    n1, n2 = pair
    # Workspace A ("default") only, through n1's API; n2 hears of it over the mesh.
    member = n1.api("PUT", "/v1/nodes/n2/workspaces", {"workspaces": ["default"]})
    assert member["workspaces"] == ["default"]
    until(
        lambda: n2.api("GET", "/v1/nodes/n2")["workspaces"] == ["default"],
        "n2 to learn its assignment",
    )
    served = n1.api("GET", "/v1/nodes?workspace=default")["items"]
    assert sorted(m["name"] for m in served) == ["n1", "n2"]  # n1 is assigned *

    b = n1.api("POST", "/v1/workspaces", {"name": "b", "organization": "default"})["id"]
    b_site = add_site(n1, b, "bsite", "b.example.test")
    a_site = add_site(n1, "default", "asite", "a.example.test")  # after B's vhost
    b_file = f"http.d/{b}/vhosts/{b_site}.conf"
    a_file = f"http.d/default/vhosts/{a_site}.conf"
    until(lambda: bool(on_disk(n1, b_file) and on_disk(n2, a_file)), "both nodes to apply")
    until(lambda: b in str(n2.api("GET", "/v1/workspaces")), "n2 to know workspace B")
    not_served = get(n2, f"/v1/workspaces/{b}/vhosts")
    assert not_served.status_code == 404
    assert not_served.json()["type"] == "urn:nxmesh:problem:not-served"
    assert [m["name"] for m in n1.api("GET", f"/v1/nodes?workspace={b}")["items"]] == ["n1"]

    # n2's tree as n1 (which serves everything) sees it: all of it, nothing of B.
    config = ok(n1, "/v1/nodes/n2/config")
    assert not config["filtered"]
    paths = [f["path"] for f in config["files"]]
    assert a_file in paths
    assert not [p for p in paths if b in p]
    assert b not in on_disk(n2, "nginx.conf").decode()
    assert not (n2.state / "nginx" / "conf" / "http.d" / b).exists()
    report = ok(n1, "/v1/nodes/n2/status")
    assert b not in str(report["units"]) + str(report["quarantined"]) + str(report["invalid"])
    assert b not in n2.api("GET", "/v1/status")["workspaces"]
    assert workspace_document(b) not in stored_documents(n2)
    assert workspace_document(b) in stored_documents(n1)

    # Both, by name: n2 fetches B's document and renders its vhost.
    member = n1.api("PUT", "/v1/nodes/n2/workspaces", {"workspaces": ["default", "b"]})
    assert member["workspaces"] == sorted(["default", b])
    until(lambda: bool(on_disk(n2, b_file)), "n2 to render workspace B")
    assert b"b.example.test" in on_disk(n2, b_file)
    assert b_file in [f["path"] for f in ok(n1, "/v1/nodes/n2/config")["files"]]
    assert get(n2, f"/v1/workspaces/{b}/vhosts").status_code == 200
    assert workspace_document(b) in stored_documents(n2)
