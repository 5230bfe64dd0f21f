"""Nodes (members, labels, revocation), invites and status, through the services."""

from __future__ import annotations

import time

import httpx

from tests.api.support import Served


async def test_nodes_list_filter_and_show(client: httpx.AsyncClient) -> None:
    nodes = (await client.get("/v1/nodes")).json()["items"]
    assert [n["name"] for n in nodes] == ["node1", "node2", "node3"]
    alive = (await client.get("/v1/nodes", params={"state": "alive"})).json()["items"]
    assert [n["name"] for n in alive] == ["node1", "node2"]
    zone_b = (await client.get("/v1/nodes", params={"label": "zone=b"})).json()["items"]
    assert [n["name"] for n in zone_b] == ["node3"]
    by_key = await client.get(f"/v1/nodes/{nodes[1]['key']}")
    assert by_key.json()["name"] == "node2"
    assert (await client.get("/v1/nodes/ghost")).status_code == 404
    bad = await client.get("/v1/nodes", params={"colour": "red"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "query.colour"


async def test_labels_are_replaced_and_validated(api: Served, client: httpx.AsyncClient) -> None:
    r = await client.put("/v1/nodes/node2/labels", json={"labels": {"zone": "c", "tier": "edge"}})
    assert r.status_code == 200, r.text
    assert r.json()["labels"] == {"zone": "c", "tier": "edge"}
    assert api.membership.items[1]["labels"] == {"zone": "c", "tier": "edge"}
    bad = await client.put("/v1/nodes/node2/labels", json={"labels": {"Bad Key": "x"}})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "labels"
    assert api.membership.items[1]["labels"] == {"zone": "c", "tier": "edge"}
    extra = await client.put("/v1/nodes/node2/labels", json={"labels": {}, "more": 1})
    assert extra.status_code == 422
    assert extra.json()["errors"][0]["field"] == "more"


async def test_revoke_once(api: Served, client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/nodes/node3/revoke")
    assert r.status_code == 200
    assert r.json()["state"] == "revoked"
    again = await client.post("/v1/nodes/node3/revoke")
    assert again.status_code == 409
    assert "already revoked" in again.json()["detail"]
    assert (await client.post("/v1/nodes/ghost/revoke")).status_code == 404


async def test_invites(api: Served, client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/invites", json={"ttl": "2h", "uses": 3})
    assert r.status_code == 201, r.text
    invite = r.json()
    assert invite["uses"] == 3
    assert invite["token"]
    assert abs(invite["expires_at"] - (time.time() + 7200)) < 60
    default = await client.post("/v1/invites", json={})
    assert default.json()["uses"] == 1
    for body, field in (({"ttl": "soon"}, "ttl"), ({"uses": 0}, "uses"), ({"ttl": "0s"}, "ttl")):
        bad = await client.post("/v1/invites", json=body)
        assert bad.status_code == 422, body
        assert bad.json()["errors"][0]["field"] == field
    assert len(api.membership.invites) == 2


async def test_status(client: httpx.AsyncClient, ws: str) -> None:
    status = (await client.get("/v1/status")).json()
    assert status["node"] == "node1"
    assert status["members"] == {"alive": 2, "suspect": 1}
    assert status["documents"]["mesh"]["log_updates"] == 2  # the organization and workspace
    assert status["api"]["caller"]["role"] == "admin"  # root, or the daemon's own uid


async def test_a_nodes_report_and_configuration(client: httpx.AsyncClient) -> None:
    """The routes' answers and errors; real reports are tested with real daemons
    (tests/e2e/test_node_reports.py)."""
    status = await client.get("/v1/nodes/node1/status")
    assert status.status_code == 200, status.text
    assert status.json()["node"] == "node1"
    assert status.json()["source"] == "local"
    config = (await client.get("/v1/nodes/node1/config")).json()
    assert config["files"] == []
    for path in ("/v1/nodes/ghost/status", "/v1/nodes/ghost/config"):
        missing = await client.get(path)
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
    # Another member, which this API cannot ask (no mesh here): 503 saying why.
    for path in ("/v1/nodes/node2/status", "/v1/nodes/node2/config"):
        down = await client.get(path)
        assert down.status_code == 503
        assert down.headers["content-type"] == "application/problem+json"
        body = down.json()
        assert body["type"] == "urn:nxmesh:problem:node-unreachable"
        assert "node2" in body["detail"]
    for bad in ("../state.db", "/etc/passwd", "a//b", "./nginx.conf", "x" * 2000):
        refused = await client.get("/v1/nodes/node1/config", params={"path": bad})
        assert refused.status_code == 422, bad
        assert refused.json()["errors"][0]["field"] == "query.path"
    absent = await client.get("/v1/nodes/node1/config", params={"path": "nginx.conf"})
    assert absent.status_code == 422
    assert "applied configuration" in absent.json()["errors"][0]["reason"]
    other = await client.get("/v1/nodes/node1/config", params={"colour": "red"})
    assert other.status_code == 422
    assert other.json()["errors"][0]["field"] == "query.colour"
