"""Hypothesis against the OpenAPI document: random requests to every operation, never a 5xx.

The API runs for real (Unix socket, SQLite store) in a background thread; the state
accumulates across examples. Bodies are schema-built, mutated, arbitrary JSON or bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.api.app import create_app
from node.api.services import ApiServices
from tests.api.fuzz_strategies import ANY_JSON, SchemaStrategies, mutate
from tests.api.support import Served, served_in_thread

DOC = create_app(cast(ApiServices, None)).openapi()
OPERATIONS = sorted(
    (path, method, op) for path, ops in DOC["paths"].items() for method, op in ops.items()
)


class World:
    """The served API and ids that exist in it (the fuzzer mostly aims at those)."""

    def __init__(self, served: Served, client: httpx.Client) -> None:
        self.served = served
        self.client = client
        org = client.post("/v1/organizations", json={"name": "acme"}).json()["id"]
        self.ws = client.post("/v1/workspaces", json={"name": "w", "organization": org}).json()[
            "id"
        ]
        up = {"name": "app", "servers": [{"address": "127.0.0.1:9001"}]}
        self.upstream = client.post(f"/v1/workspaces/{self.ws}/upstreams", json=up).json()["id"]
        self.ids = [org, self.ws, self.upstream, "node1", "nosuch"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    directory: Path = tmp_path_factory.mktemp("fuzz")
    with served_in_thread(directory) as served, served.sync_client() as client:
        yield World(served, client)


def ids_strategy(world_ids: list[str]) -> st.SearchStrategy[str]:
    return st.sampled_from(world_ids) | st.text(max_size=12) | st.from_regex(r"\A[a-z0-9]{1,8}\Z")


@st.composite
def requests(draw: st.DrawFn, world: World) -> tuple[str, str, dict[str, Any]]:
    path, method, op = draw(st.sampled_from(OPERATIONS))
    ids = ids_strategy(world.ids)
    schemas = SchemaStrategies(DOC, ids)

    def fill(match: re.Match[str]) -> str:
        aim = draw(st.integers(0, 9))  # mostly at what exists, sometimes anywhere
        if match.group(1) == "workspace" and aim < 9:
            value = world.ws
        else:
            value = draw(st.sampled_from(world.ids)) if aim < 7 else draw(ids)
        return quote(value, safe="") or "x"

    url = re.sub(r"\{(\w+)\}", fill, path)
    kw: dict[str, Any] = {}
    params = [p for p in op.get("parameters", []) if p["in"] == "query"]
    chosen = draw(st.lists(st.sampled_from(params), max_size=2)) if params else []
    query = {p["name"]: draw(st.text(max_size=10)) for p in chosen}
    if draw(st.integers(0, 9)) == 0:
        query[draw(st.text(min_size=1, max_size=8))] = "x"
    if query:
        kw["params"] = query
    body_schema = op.get("requestBody", {}).get("content", {}).get("application/json", {})
    if "schema" in body_schema:
        built = draw(schemas.for_schema(body_schema["schema"]))
        flavour = draw(st.integers(0, 9))
        if flavour < 5:
            kw["json"] = built
        elif flavour < 8:
            kw["json"] = draw(mutate(built))
        elif flavour < 9:
            kw["json"] = draw(ANY_JSON)
        else:
            kw["content"] = draw(st.binary(max_size=200))
    return method.upper(), url, kw


def test_no_request_makes_the_api_fail(world: World) -> None:
    """600 requests; then a guard against a fuzzer that only ever produces 4xx: some of
    its writes must have been acknowledged (in the same test, so that no scheduling of
    tests across workers can separate the two)."""
    before = len(world.served.published)

    @settings(
        max_examples=600,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(data=st.data())
    def one_request(data: st.DataObject) -> None:
        method, url, kw = data.draw(requests(world), label="request")
        if method == "GET" and url.endswith("/watch"):
            return  # a stream that never ends; covered by test_watch
        response = world.client.request(method, url, **kw)
        assert response.status_code < 500, (method, url, kw, response.text)
        if response.status_code >= 400:
            assert response.headers["content-type"] == "application/problem+json"
            problem = response.json()
            assert problem["status"] == response.status_code
            assert problem["detail"]
        elif response.status_code != 204 and "json" in kw:
            json.loads(response.text)  # answers are JSON

    one_request()
    assert len(world.served.published) > before
