"""CRUD over the real socket: create, read, list with filters, idempotent PUT, PATCH, DELETE."""

from __future__ import annotations

from typing import Any

import httpx
from pycrdt import Map

from crdt.documents import MESH_DOCUMENT, workspace_document
from crdt.schema import Upstream
from tests.api.support import Served

UP = {"name": "app", "servers": [{"address": "127.0.0.1:9001"}, {"address": "127.0.0.1:9002"}]}


def unstamped(entity: dict[str, Any]) -> dict[str, Any]:
    """An entity without ``changed_at`` (every change moves it)."""
    return {k: v for k, v in entity.items() if k != "changed_at"}


def vhost(name: str, upstream: str, *names: str) -> dict[str, Any]:
    return {
        "name": name,
        "server_names": list(names) or [f"{name}.example.test"],
        "locations": [{"path": "/", "upstream": upstream}],
    }


async def test_organization_and_workspace_round_trip(
    api: Served, client: httpx.AsyncClient
) -> None:
    r = await client.post("/v1/organizations", json={"name": "acme", "description": "Acme Ltd"})
    assert r.status_code == 201, r.text
    org = r.json()
    assert r.headers["location"] == f"/v1/organizations/{org['id']}"
    r = await client.post("/v1/workspaces", json={"name": "prod", "organization": org["id"]})
    assert r.status_code == 201, r.text
    ws = r.json()
    assert (await client.get(f"/v1/workspaces/{ws['id']}")).json() == ws
    listed = (await client.get("/v1/workspaces", params={"organization": org["id"]})).json()
    assert listed == {"items": [ws], "invalid": []}
    # in the mesh document, where every replica will see it
    assert api.document(MESH_DOCUMENT).to_json()["workspaces"][ws["id"]]["name"] == "prod"
    r = await client.patch(f"/v1/workspaces/{ws['id']}", json={"description": "production"})
    assert r.status_code == 200
    assert unstamped(r.json()) == unstamped({**ws, "description": "production"})
    assert (await client.delete(f"/v1/workspaces/{ws['id']}")).status_code == 204
    assert (await client.get(f"/v1/workspaces/{ws['id']}")).status_code == 404
    assert (await client.delete(f"/v1/organizations/{org['id']}")).status_code == 204


async def test_upstream_and_vhost_lifecycle(
    api: Served, client: httpx.AsyncClient, ws: str
) -> None:
    base = f"/v1/workspaces/{ws}"
    r = await client.post(f"{base}/upstreams", json=UP)
    assert r.status_code == 201, r.text
    up = r.json()
    assert up["name"] == "app"
    assert [s["address"] for s in up["servers"]] == [
        "127.0.0.1:9001",
        "127.0.0.1:9002",
    ]
    r = await client.post(f"{base}/vhosts", json=vhost("shop", up["id"], "shop.example.test"))
    assert r.status_code == 201, r.text
    vh = r.json()
    stored = api.document(workspace_document(ws)).to_json()
    assert stored["virtual_hosts"][vh["id"]]["locations"][0]["upstream"] == up["id"]
    assert (await client.get(f"{base}/vhosts/{vh['id']}")).json() == vh

    r = await client.patch(f"{base}/upstreams/{up['id']}", json={"method": "least_conn"})
    assert r.status_code == 200, r.text
    assert unstamped(r.json()) == unstamped({**up, "method": "least_conn"})

    assert (await client.delete(f"{base}/vhosts/{vh['id']}")).status_code == 204
    assert (await client.delete(f"{base}/upstreams/{up['id']}")).status_code == 204
    assert (await client.get(f"{base}/upstreams")).json() == {"items": [], "invalid": []}
    # each acknowledged edit was handed to the daemon to broadcast, in order
    docs = [name for name, _ in api.published]
    assert docs == [MESH_DOCUMENT] * 2 + [workspace_document(ws)] * 5


async def test_post_with_an_id_uses_it(client: httpx.AsyncClient, ws: str) -> None:
    r = await client.post(f"/v1/workspaces/{ws}/upstreams", json={**UP, "id": "app-1"})
    assert r.status_code == 201
    assert r.json()["id"] == "app-1"
    assert (await client.get(f"/v1/workspaces/{ws}/upstreams/app-1")).status_code == 200


async def test_put_creates_then_is_idempotent(
    api: Served, client: httpx.AsyncClient, ws: str
) -> None:
    url = f"/v1/workspaces/{ws}/upstreams/app"
    first = await client.put(url, json=UP)
    assert first.status_code == 201, first.text
    before = api.snapshot()
    again = await client.put(url, json=UP)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert api.snapshot() == before  # no update logged, nothing published

    changed = await client.put(url, json={**UP, "keepalive": 16})
    assert changed.status_code == 200
    assert changed.json()["keepalive"] == 16
    assert len(api.published) == before["published"] + 1
    # a PUT replaces: a field left out returns to its default
    reset = await client.put(url, json=UP)
    assert reset.json()["keepalive"] == 0


async def test_patch_writes_only_the_named_fields(
    api: Served, client: httpx.AsyncClient, ws: str
) -> None:
    up = (await client.post(f"/v1/workspaces/{ws}/upstreams", json=UP)).json()
    doc = workspace_document(ws)
    seq = api.store.stats(doc).last_seq
    r = await client.patch(f"/v1/workspaces/{ws}/upstreams/{up['id']}", json={"description": "x"})
    assert r.status_code == 200
    assert api.store.stats(doc).last_seq == seq + 1
    name, update = api.published[-1]
    assert name == doc
    assert len(update) < 512  # the field, the author stamp and an audit log entry
    same = await client.patch(
        f"/v1/workspaces/{ws}/upstreams/{up['id']}", json={"description": "x"}
    )
    assert same.status_code == 200
    assert api.store.stats(doc).last_seq == seq + 1  # unchanged value: nothing written


async def test_filters(client: httpx.AsyncClient, ws: str) -> None:
    base = f"/v1/workspaces/{ws}"
    app = (await client.post(f"{base}/upstreams", json=UP)).json()["id"]
    other = {"name": "api", "servers": [{"address": "10.0.0.7:80"}]}
    api_up = (await client.post(f"{base}/upstreams", json=other)).json()["id"]
    await client.post(f"{base}/vhosts", json=vhost("shop", app, "shop.example.test"))
    await client.post(f"{base}/vhosts", json=vhost("blog", api_up, "blog.example.test"))
    off = {**vhost("old", app, "old.example.test"), "enabled": False}
    await client.post(f"{base}/vhosts", json=off)

    async def names(path: str, **params: Any) -> list[str]:
        r = await client.get(f"{base}/{path}", params=params)
        assert r.status_code == 200, r.text
        return sorted(e["name"] for e in r.json()["items"])

    assert await names("vhosts") == ["blog", "old", "shop"]
    assert await names("vhosts", server_name="SHOP.example.test") == ["shop"]
    assert await names("vhosts", upstream=app) == ["old", "shop"]
    assert await names("vhosts", upstream=app, enabled="true") == ["shop"]
    assert await names("vhosts", name=["shop", "blog"]) == ["blog", "shop"]
    assert await names("vhosts", name="nothing") == []
    assert await names("upstreams", server="10.0.0.7:80") == ["api"]
    r = await client.get(f"{base}/vhosts", params={"enabled": "maybe"})
    assert r.status_code == 422
    assert r.json()["errors"] == [{"field": "query.enabled", "reason": "must be true or false"}]


async def test_invalid_stored_entities_are_reported_and_repairable(
    api: Served, client: httpx.AsyncClient, ws: str
) -> None:
    up = (await client.post(f"/v1/workspaces/{ws}/upstreams", json=UP)).json()
    persisted = api.services.document(workspace_document(ws))
    assert persisted is not None

    def corrupt(doc: Any) -> None:  # a peer (or another version) wrote a bad address
        doc.get(Upstream.COLLECTION, type=Map)[up["id"]]["servers"] = [{"address": "nope"}]

    persisted.commit(corrupt)
    listing = (await client.get(f"/v1/workspaces/{ws}/upstreams")).json()
    assert listing["items"] == []
    assert listing["invalid"][0]["id"] == up["id"]
    assert listing["invalid"][0]["errors"][0]["field"] == "servers[0].address"
    r = await client.get(f"/v1/workspaces/{ws}/upstreams/{up['id']}")
    assert r.status_code == 409
    assert r.json()["errors"][0]["field"] == "servers[0].address"
    fix = await client.patch(
        f"/v1/workspaces/{ws}/upstreams/{up['id']}", json={"servers": UP["servers"]}
    )
    assert fix.status_code == 200, fix.text
    repaired = (await client.get(f"/v1/workspaces/{ws}/upstreams/{up['id']}")).json()
    assert unstamped(repaired) == unstamped(up)


async def test_fields_of_a_newer_version_survive_and_round_trip(
    api: Served, client: httpx.AsyncClient, ws: str
) -> None:
    url = f"/v1/workspaces/{ws}/upstreams/app"
    await client.put(url, json=UP)
    persisted = api.services.document(workspace_document(ws))
    assert persisted is not None
    persisted.commit(
        lambda doc: doc.get("upstreams", type=Map)["app"].__setitem__("slow_start", 30)
    )
    shown = (await client.get(url)).json()
    assert shown["slow_start"] == 30
    before = api.snapshot()
    echo = await client.put(url, json=shown)  # GET, then PUT it back: accepted, nothing to write
    assert echo.status_code == 200, echo.text
    assert api.snapshot() == before
    without = await client.put(url, json={**UP, "description": "kept"})
    assert without.json()["slow_start"] == 30  # a PUT never removes what it does not know
    changed = await client.put(url, json={**shown, "slow_start": 5})
    assert changed.status_code == 422
    assert changed.json()["errors"] == [{"field": "slow_start", "reason": "is not a known field"}]


async def test_reference_rules_of_the_mesh_document(client: httpx.AsyncClient, ws: str) -> None:
    r = await client.post("/v1/workspaces", json={"name": "x", "organization": "nope"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "organization"
    org = (await client.get(f"/v1/workspaces/{ws}")).json()["organization"]
    r = await client.delete(f"/v1/organizations/{org}")
    assert r.status_code == 409
    assert r.json()["errors"] == [
        {"field": f"workspaces.{ws}.organization", "reason": "refers to this organization"}
    ]


async def test_a_workspace_is_deleted_only_once_empty(client: httpx.AsyncClient, ws: str) -> None:
    up = (await client.post(f"/v1/workspaces/{ws}/upstreams", json=UP)).json()
    r = await client.delete(f"/v1/workspaces/{ws}")
    assert r.status_code == 409
    assert "1 upstreams" in r.json()["detail"]
    await client.delete(f"/v1/workspaces/{ws}/upstreams/{up['id']}")
    assert (await client.delete(f"/v1/workspaces/{ws}")).status_code == 204


async def test_names_are_unique_per_kind(client: httpx.AsyncClient, ws: str) -> None:
    await client.post(f"/v1/workspaces/{ws}/upstreams", json=UP)
    r = await client.post(f"/v1/workspaces/{ws}/upstreams", json=UP)
    assert r.status_code == 409
    assert r.json()["errors"][0]["field"] == "name"
