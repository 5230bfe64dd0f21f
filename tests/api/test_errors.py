"""Every refusal is problem+json naming the field and reason, and writes nothing.

Each case compares every document's content, its log on disk and what was handed to the
daemon to broadcast before and after the refused request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.api.support import Served

UP = {"name": "app", "servers": [{"address": "127.0.0.1:9001"}]}


async def refused(
    api: Served,
    client: httpx.AsyncClient,
    method: str,
    url: str,
    status: int,
    fields: tuple[str, ...] = (),
    **kw: Any,
) -> dict[str, Any]:
    before = api.snapshot()
    r = await client.request(method, url, **kw)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["status"] == status
    assert problem["type"].startswith("urn:nxmesh:problem:")
    assert problem["title"]
    assert problem["detail"]
    named = [e["field"] for e in problem.get("errors", [])]
    assert named[: len(fields)] == list(fields), problem
    assert all(e["reason"] for e in problem.get("errors", []))
    assert api.snapshot() == before, "a refused request changed the state"
    return dict(problem)


@pytest.fixture
async def up(client: httpx.AsyncClient, ws: str) -> str:
    r = await client.post(f"/v1/workspaces/{ws}/upstreams", json=UP)
    return str(r.json()["id"])


BAD_BODIES = [
    ({"name": "a", "servers": [{"address": "nope"}]}, ("servers[0].address",)),
    ({**UP, "colour": "red"}, ("colour",)),
    ({"name": "a", "servers": [{"address": "1.2.3.4:80", "wieght": 2}]}, ("servers[0].wieght",)),
    ({"name": "a", "servers": "127.0.0.1:80"}, ("servers",)),
    ({**UP, "keepalive": "many"}, ("keepalive",)),
    ({**UP, "keepalive": True}, ("keepalive",)),
    ({"servers": UP["servers"]}, ("name",)),
    ({**UP, "method": "hash"}, ("hash_key",)),
    ({"name": "a" * 65, "servers": [], "x": 1}, ("name", "servers", "x")),
]


@pytest.mark.parametrize(("body", "fields"), BAD_BODIES)
async def test_schema_errors_name_the_field(
    api: Served, client: httpx.AsyncClient, ws: str, body: dict[str, Any], fields: tuple[str, ...]
) -> None:
    problem = await refused(
        api, client, "POST", f"/v1/workspaces/{ws}/upstreams", 422, fields, json=body
    )
    assert problem["type"] == "urn:nxmesh:problem:validation"


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b'{"name": "a",', "not valid JSON"),
        (b'{"name": NaN}', "NaN is not JSON"),
        (b'{"keepalive": 1e400}', "out of range"),
        (b'{"name": "a", "name": "b"}', "given twice"),
        (b"", "needs a JSON body"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[" * 40 + b"]" * 40, "deeper than"),
        (b"[" * 30_000 + b"]" * 30_000, "deeper than"),
    ],
)
async def test_bad_json_is_400(
    api: Served, client: httpx.AsyncClient, ws: str, content: bytes, detail: str
) -> None:
    problem = await refused(
        api, client, "POST", f"/v1/workspaces/{ws}/upstreams", 400, content=content
    )
    assert detail in problem["detail"]


async def test_a_body_that_is_not_an_object(
    api: Served, client: httpx.AsyncClient, ws: str
) -> None:
    await refused(api, client, "POST", f"/v1/workspaces/{ws}/upstreams", 422, ("(body)",), json=[1])


async def test_not_json_is_415(api: Served, client: httpx.AsyncClient, ws: str) -> None:
    headers = {"content-type": "text/plain"}
    await refused(
        api, client, "POST", f"/v1/workspaces/{ws}/upstreams", 415, content=b"{}", headers=headers
    )


async def test_oversized_bodies_are_413(api: Served, client: httpx.AsyncClient, ws: str) -> None:
    big = {**UP, "description": "x" * (70 * 1024)}  # the test cap is 64 KiB
    await refused(api, client, "POST", f"/v1/workspaces/{ws}/upstreams", 413, json=big)

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"name": "app", "description": "'
        for _ in range(100):
            yield b"x" * 1024
        yield b'"}'

    await refused(api, client, "POST", f"/v1/workspaces/{ws}/upstreams", 413, content=chunks())
    # the connection stays usable after a refusal
    assert (await client.get("/v1/status")).status_code == 200


async def test_missing_reference_is_422_naming_the_field(
    api: Served, client: httpx.AsyncClient, ws: str, up: str
) -> None:
    body = {
        "name": "shop",
        "server_names": ["shop.example.test"],
        "locations": [
            {"path": "/", "upstream": up},
            {"path": "/api", "upstream": "missing"},
        ],
    }
    problem = await refused(
        api,
        client,
        "POST",
        f"/v1/workspaces/{ws}/vhosts",
        422,
        ("locations[1].upstream",),
        json=body,
    )
    assert "'missing', which does not exist" in problem["errors"][0]["reason"]
    tls = {
        **body,
        "locations": body["locations"][:1],
        "tls": {"mode": "manual", "certificate": "c"},
    }
    await refused(
        api, client, "POST", f"/v1/workspaces/{ws}/vhosts", 422, ("tls.certificate",), json=tls
    )
    stream = {"name": "db", "port": 5432, "upstream": "missing"}
    await refused(
        api, client, "POST", f"/v1/workspaces/{ws}/streams", 422, ("upstream",), json=stream
    )


async def test_a_clash_made_by_the_edit_is_refused(
    api: Served, client: httpx.AsyncClient, ws: str, up: str
) -> None:
    stream = {"name": "web", "port": 80, "upstream": up}  # port 80 is the http entry point
    await refused(api, client, "POST", f"/v1/workspaces/{ws}/streams", 422, ("port",), json=stream)


async def test_unknown_resources_are_404(
    api: Served, client: httpx.AsyncClient, ws: str, up: str
) -> None:
    base = f"/v1/workspaces/{ws}"
    await refused(api, client, "GET", f"{base}/upstreams/nosuch", 404)
    await refused(api, client, "GET", f"{base}/upstreams/Not An Id", 404)
    await refused(api, client, "PATCH", f"{base}/upstreams/nosuch", 404, json={"name": "x"})
    await refused(api, client, "DELETE", f"{base}/vhosts/nosuch", 404)
    await refused(api, client, "GET", "/v1/workspaces/nosuch/upstreams", 404)
    await refused(api, client, "POST", "/v1/workspaces/nosuch/upstreams", 404, json=UP)
    await refused(api, client, "GET", "/v1/teapots", 404)
    await refused(api, client, "GET", "/v2/status", 404)


async def test_deleting_what_is_still_used_is_409(
    api: Served, client: httpx.AsyncClient, ws: str, up: str
) -> None:
    vh = {
        "name": "shop",
        "server_names": ["s.example.test"],
        "locations": [{"path": "/", "upstream": up}],
    }
    vid = (await client.post(f"/v1/workspaces/{ws}/vhosts", json=vh)).json()["id"]
    field = f"virtual_hosts.{vid}.locations[0].upstream"
    problem = await refused(
        api, client, "DELETE", f"/v1/workspaces/{ws}/upstreams/{up}", 409, (field,)
    )
    assert "virtual host 'shop'" in problem["detail"]


async def test_conflicts_on_ids_and_names(
    api: Served, client: httpx.AsyncClient, ws: str, up: str
) -> None:
    base = f"/v1/workspaces/{ws}/upstreams"
    await refused(api, client, "POST", base, 409, ("id",), json={**UP, "id": up, "name": "b"})
    await refused(api, client, "POST", base, 409, ("name",), json=UP)
    await refused(api, client, "POST", base, 422, ("id",), json={**UP, "name": "b", "id": "Bad Id"})
    await refused(api, client, "PUT", f"{base}/other", 422, ("id",), json={**UP, "id": up})
    await refused(api, client, "PATCH", f"{base}/{up}", 422, ("id",), json={"id": "x"})
    await refused(api, client, "PATCH", f"{base}/{up}", 422, ("colour",), json={"colour": 1})
    await refused(api, client, "PATCH", f"{base}/{up}", 422, ("servers",), json={"servers": []})


async def test_unknown_filters_and_methods(api: Served, client: httpx.AsyncClient, ws: str) -> None:
    await refused(
        api,
        client,
        "GET",
        f"/v1/workspaces/{ws}/upstreams",
        422,
        ("query.colour",),
        params={"colour": 1},
    )
    problem = await refused(api, client, "PUT", f"/v1/workspaces/{ws}/upstreams", 405)
    assert "PUT" in problem["detail"]


async def test_a_full_disk_is_507_and_nothing_is_acknowledged(
    api: Served, client: httpx.AsyncClient, ws: str, up: str
) -> None:
    conn = api.store._conn
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count={pages}")
    try:
        body = {
            "name": "big",
            "servers": [{"address": f"10.0.{i // 250}.{i % 250 + 1}:80"} for i in range(500)],
        }
        problem = await refused(
            api, client, "POST", f"/v1/workspaces/{ws}/upstreams", 507, json=body
        )
        assert "full" in problem["detail"]
    finally:
        conn.execute("PRAGMA max_page_count=1073741823")
    # the node recovers once there is room again
    r = await client.post(f"/v1/workspaces/{ws}/upstreams", json={**UP, "name": "later"})
    assert r.status_code == 201, r.text


async def test_a_read_only_store_is_503(
    api: Served, client: httpx.AsyncClient, ws: str, up: str
) -> None:
    api.store._conn.execute("PRAGMA query_only=1")
    try:
        problem = await refused(
            api,
            client,
            "PATCH",
            f"/v1/workspaces/{ws}/upstreams/{up}",
            503,
            json={"description": "x"},
        )
        assert "read-only" in problem["detail"]
    finally:
        api.store._conn.execute("PRAGMA query_only=0")
    r = await client.patch(f"/v1/workspaces/{ws}/upstreams/{up}", json={"description": "x"})
    assert r.status_code == 200


async def test_a_workspace_this_node_does_not_serve_is_404(
    api: Served, client: httpx.AsyncClient, ws: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    mesh_only = api.services.document

    def document(name: str) -> Any:
        return mesh_only(name) if name == "mesh" else None

    monkeypatch.setattr(api.services, "document", document)
    problem = await refused(api, client, "GET", f"/v1/workspaces/{ws}/upstreams", 404)
    assert problem["type"] == "urn:nxmesh:problem:not-served"
    assert "not served by node 'node1'" in problem["detail"]


async def test_an_acknowledged_edit_stands_when_broadcasting_fails(
    api: Served, client: httpx.AsyncClient, ws: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(name: str, update: bytes) -> None:
        raise RuntimeError("mesh down")

    monkeypatch.setattr(api.services, "published", broken)
    r = await client.post(f"/v1/workspaces/{ws}/upstreams", json=UP)
    assert r.status_code == 201  # durable on disk; peers catch up through anti-entropy
    assert (await client.get(f"/v1/workspaces/{ws}/upstreams/{r.json()['id']}")).status_code == 200
