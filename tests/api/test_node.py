"""Nodes (members, labels, workspace assignments, revocation), invites and status,
through the services."""

from __future__ import annotations

import time

import httpx
import trio

from crdt.documents import MESH_DOCUMENT, MeshDocument
from crdt.membership import assigned
from crdt.schema import Organization, Workspace
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


def assignment(api: Served, node: str) -> frozenset[str]:
    """What the mesh document's ``assignments`` give member ``node`` (by its key)."""
    persisted = api.services.document(MESH_DOCUMENT)
    assert persisted is not None
    key = next(m["key"] for m in api.membership.items if m["name"] == node)
    return assigned(persisted.doc, bytes.fromhex(key))


def twin(api: Served, name: str) -> str:
    """A workspace written straight into the mesh document (as a peer could, concurrently
    with another of the same name): its id."""
    persisted = api.services.document(MESH_DOCUMENT)
    assert persisted is not None
    org = MeshDocument(persisted.doc).list(Organization)[0][0].id
    data = {"name": name, "organization": org}
    made, _ = MeshDocument.edit(persisted, lambda d: d.create(Workspace, data))
    return made.id


async def test_workspaces_are_replaced_in_the_mesh_document(
    api: Served, client: httpx.AsyncClient, ws: str
) -> None:
    org = (await client.get(f"/v1/workspaces/{ws}")).json()["organization"]
    made = await client.post("/v1/workspaces", json={"name": "staging", "organization": org})
    staging = made.json()["id"]
    assert (await client.get("/v1/nodes/node2")).json()["workspaces"] == []
    with trio.fail_after(10):
        async with api.services.events.subscribe() as events:
            r = await client.put("/v1/nodes/node2/workspaces", json={"workspaces": ["default"]})
            assert r.status_code == 200, r.text
            assert r.json()["workspaces"] == [ws]  # the name, resolved to the id
            event = await events.receive()
    assert (event["type"], event["op"], event["node"]) == ("member", "workspaces", "node2")
    assert assignment(api, "node2") == {ws}
    assert api.published[-1][0] == MESH_DOCUMENT  # handed to the mesh

    both = await client.put("/v1/nodes/node2/workspaces", json={"workspaces": [staging, ws]})
    assert both.json()["workspaces"] == sorted([ws, staging])
    assert assignment(api, "node2") == {ws, staging}
    shown = (await client.get("/v1/nodes/node2")).json()
    assert shown["workspaces"] == sorted([ws, staging])

    log = api.store.stats(MESH_DOCUMENT).updates
    everything = await client.put("/v1/nodes/node2/workspaces", json={"workspaces": ["*"]})
    assert everything.json()["workspaces"] == ["*"]
    assert assignment(api, "node2") == {"*"}  # the ids' keys removed
    assert api.store.stats(MESH_DOCUMENT).updates == log + 1  # in one transaction

    before, seq = api.snapshot(), api.services.events.last_seq
    again = await client.put("/v1/nodes/node2/workspaces", json={"workspaces": ["*", "*"]})
    assert again.status_code == 200
    assert api.snapshot() == before  # unchanged: nothing written, published or announced
    assert api.services.events.last_seq == seq

    await client.put("/v1/nodes/node1/workspaces", json={"workspaces": [staging]})
    serving = await client.get("/v1/nodes", params={"workspace": staging})
    assert [n["name"] for n in serving.json()["items"]] == ["node1", "node2"]  # node2: *
    only_ws = await client.get("/v1/nodes", params={"workspace": ws})
    assert [n["name"] for n in only_ws.json()["items"]] == ["node2"]

    none = await client.put("/v1/nodes/node2/workspaces", json={"workspaces": []})
    assert none.status_code == 200
    assert none.json()["workspaces"] == []
    assert assignment(api, "node2") == frozenset()
    assert none.json()["state"] == "alive"  # still a member


async def test_a_refused_assignment_writes_nothing(
    api: Served, client: httpx.AsyncClient, ws: str
) -> None:
    await client.put("/v1/nodes/node2/workspaces", json={"workspaces": [ws]})
    first, second = twin(api, "shop"), twin(api, "shop")
    named_like_an_id = twin(api, ws)  # its name is the id of 'default'
    await client.post("/v1/nodes/node3/revoke")
    cases: list[tuple[str, object, int, list[str], str]] = [
        ("node2", {"workspaces": ["nope"]}, 422, ["workspaces[0]"], "no workspace"),
        ("node2", {"workspaces": [first, "shop"]}, 422, ["workspaces[1]"], "names 2"),
        ("node2", {"workspaces": [ws]}, 422, ["workspaces[0]"], "names 2"),
        ("node2", {"workspaces": ["*", ws]}, 422, ["workspaces[0]"], "must be alone"),
        ("node2", {"workspaces": [first, "*"]}, 422, ["workspaces[1]"], "must be alone"),
        ("node2", {"workspaces": ["nope", "other"]}, 422, ["workspaces[0]", "workspaces[1]"], ""),
        ("node2", {"workspaces": "default"}, 422, ["workspaces"], ""),
        ("node2", {"workspaces": [""]}, 422, ["workspaces[0]"], ""),
        ("node2", {"workspaces": [1]}, 422, ["workspaces[0]"], ""),
        ("node2", {}, 422, ["workspaces"], ""),
        ("node2", {"workspaces": [], "more": 1}, 422, ["more"], ""),
        ("ghost", {"workspaces": [first]}, 404, [], "ghost"),
        ("node3", {"workspaces": [first]}, 409, [], "revoked"),
    ]
    for node, body, status, fields, why in cases:
        before, seq = api.snapshot(), api.services.events.last_seq
        r = await client.put(f"/v1/nodes/{node}/workspaces", json=body)
        assert r.status_code == status, (body, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        problem = r.json()
        assert [e["field"] for e in problem.get("errors", [])] == fields, body
        assert why in str(problem), body
        assert api.snapshot() == before, body  # not a byte written, nothing published
        assert api.services.events.last_seq == seq, body
    assert assignment(api, "node2") == {ws}
    ambiguous = await client.put("/v1/nodes/node2/workspaces", json={"workspaces": ["shop"]})
    assert f"give one id ({', '.join(sorted([first, second]))})" in ambiguous.text
    by_id = await client.put("/v1/nodes/node2/workspaces", json={"workspaces": [second]})
    assert by_id.json()["workspaces"] == [second]
    assert named_like_an_id in (await client.get("/v1/workspaces")).text
