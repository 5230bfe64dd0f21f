"""Three real daemons joined by tokens, each with its own managed nginx: an edit made on
any node is served by every node's nginx; a node killed with -9 during edits catches up
after a restart; a revoked node is cut off for good."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from node.localmesh import NodeProcessError
from tests.e2e.harness import LocalNode, backends, mesh, metric, until

pytestmark = [pytest.mark.nginx, pytest.mark.slow]


def test_an_edit_on_node_3_is_served_by_every_nodes_nginx(tmp_path: Path) -> None:
    with backends(2) as ports, mesh(tmp_path, 3) as (n1, n2, n3):
        servers = [a for p in ports for a in ("--server", f"127.0.0.1:{p}")]
        n3.cli("upstream", "create", "app", *servers)
        n3.cli("vhost", "create", "shop", "--server-name", "shop.example.test", "--upstream", "app")
        for node in (n1, n2, n3):
            until(partial(_serves, node, "shop.example.test"), f"{node.name} to serve the shop")
        # Round robin across both backends, through node 1's nginx.
        seen = {_body(n1, "shop.example.test") for _ in range(6)}
        assert seen == {f"backend {p} via shop.example.test\n" for p in ports}
        # Unknown hosts get the default server, not the shop.
        other = n2.get("unknown.example.test")
        assert other is not None
        assert other.status_code != 200

        # Every node publishes the same desired-state digest once converged.
        def digests() -> set[str]:
            return {m["metadata"].get("state") for m in n1.api("GET", "/v1/nodes")["items"]}

        until(lambda: len(digests()) == 1 and "" not in digests(), "one desired state everywhere")
        # ... and, per workspace it serves, the digest of that workspace's state.
        (ws,) = [w["id"] for w in n1.api("GET", "/v1/workspaces")["items"]]
        nodes = n2.api("GET", "/v1/nodes")["items"]
        published = {m["metadata"]["workspaces"].get(ws) for m in nodes}
        assert len(published) == 1, nodes
        assert None not in published, nodes
        assert all(m["metadata"]["workspaces_complete"] for m in nodes)


def test_a_node_killed_during_edits_catches_up_after_restart(tmp_path: Path) -> None:
    with backends(1) as (port,), mesh(tmp_path, 3) as (n1, n2, _n3):
        n1.cli("upstream", "create", "app", "--server", f"127.0.0.1:{port}")
        acked: list[str] = []
        for i in range(12):
            if i == 4:
                n2.kill9()  # in the middle of the stream of edits
            name = f"site{i}"
            n1.cli("vhost", "create", name, "--server-name", f"{name}.example.test",
                   "--upstream", "app")  # fmt: skip
            acked.append(name)
        n2.start()
        until(
            lambda: (
                {v["name"] for v in n2.api("GET", "/v1/workspaces/default/vhosts")["items"]}
                >= set(acked)
            ),
            "node 2 to hold every acknowledged vhost",
        )
        until(partial(_serves, n2, "site11.example.test"), "node 2's nginx to serve the last vhost")


def test_a_revoked_node_is_cut_off(tmp_path: Path) -> None:
    with mesh(tmp_path, 3) as (n1, n2, n3):
        # n3 is down when it is revoked, so it never hears of it: when it comes back it
        # still believes it is a member, and the others must refuse it on their own.
        n3.kill9()
        n1.cli("revoke", "n3", "--yes")
        for node in (n1, n2):
            until(partial(_is, node, "n3", "revoked"), f"{node.name} to see n3 revoked")
        before = metric(n1, "nxmesh_mesh_drops", 'reason="not_member"')
        n3.start()
        until(
            lambda: metric(n1, "nxmesh_mesh_drops", 'reason="not_member"') > before,
            "n1 to drop n3's packets as a non-member's",
        )
        # Nobody answers n3 any more: its join keeps failing, it never sees n1 alive.
        assert _state_of(n3, "n1") != "alive"
        assert n3.api("GET", "/v1/status")["members"] == {"alive": 1}
        assert _state_of(n1, "n3") == "revoked"
        assert _state_of(n2, "n3") == "revoked"
        # A revoked node serves nothing, cannot be assigned anything nor revoked again.
        assert n1.api("GET", "/v1/nodes/n3")["workspaces"] == []
        with pytest.raises(NodeProcessError, match=r"409.*n3 is revoked"):
            n1.api("PUT", "/v1/nodes/n3/workspaces", {"workspaces": ["*"]})
        with pytest.raises(NodeProcessError, match=r"409.*already revoked"):
            n1.api("POST", "/v1/nodes/n3/revoke")


def _serves(node: LocalNode, host: str) -> bool:
    response = node.get(host)
    return response is not None and response.status_code == 200 and "backend" in response.text


def _body(node: LocalNode, host: str) -> str:
    response = node.get(host)
    assert response is not None
    return response.text


def _is(node: LocalNode, name: str, state: str) -> bool:
    return _state_of(node, name) == state


def _state_of(node: LocalNode, name: str) -> str:
    members = node.api("GET", "/v1/nodes")["items"]
    return next((m["state"] for m in members if m["name"] == name), "absent")
