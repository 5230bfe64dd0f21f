"""The committed OpenAPI document is the app's, and it is self-consistent.

Regenerate after changing the API: ``uv run python -m node.api.openapi > docs/openapi.json``.
"""

from __future__ import annotations

import json
from typing import Any, cast

import httpx
from fastapi.routing import APIRoute

from node.api.app import create_app
from node.api.resources import RESOURCES
from node.api.routes_audit import audit_router
from node.api.routes_certs import certificate_router
from node.api.routes_entities import entity_router
from node.api.routes_node import node_router
from node.api.services import ApiServices
from tests.support.paths import REPO

COMMITTED = REPO / "docs" / "openapi.json"
REGENERATE = "uv run python -m node.api.openapi > docs/openapi.json"


def current() -> dict[str, Any]:
    doc = create_app(cast(ApiServices, None)).openapi()
    return cast(dict[str, Any], json.loads(json.dumps(doc)))


def refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(refs(v) for v in node))
    return set()


def test_the_committed_document_matches_the_app() -> None:
    committed = json.loads(COMMITTED.read_text())
    assert committed == current(), f"docs/openapi.json is stale: run `{REGENERATE}`"


async def test_the_served_document_is_the_committed_one(client: httpx.AsyncClient) -> None:
    served = (await client.get("/v1/openapi.json")).json()
    assert served == json.loads(COMMITTED.read_text())


def test_every_route_is_documented_with_its_errors() -> None:
    doc = current()
    routes = {
        (route.path, method.lower())
        for router in (entity_router(), node_router(), certificate_router(), audit_router())
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    }
    documented = {(p, m) for p, ops in doc["paths"].items() for m in ops}
    assert routes == documented
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            problems = [s for s in op["responses"] if s.startswith(("4", "5"))]
            assert "403" in problems, (path, method)
            for status in problems:
                content = op["responses"][status]["content"]
                assert list(content) == ["application/problem+json"], (path, method, status)


def test_every_reference_resolves() -> None:
    doc = current()
    names = set(doc["components"]["schemas"])
    missing = {r for r in refs(doc) if r.removeprefix("#/components/schemas/") not in names}
    assert missing == set()


def test_bodies_are_closed_and_create_needs_no_id() -> None:
    schemas = current()["components"]["schemas"]
    for res in RESOURCES:
        name = res.kind.__name__
        assert schemas[f"{name}Input"]["additionalProperties"] is False
        assert "id" in schemas[f"{name}Input"]["required"]
        assert "id" not in schemas[f"{name}Create"].get("required", [])
        assert "required" not in schemas[f"{name}Patch"]
        assert schemas[name]["additionalProperties"] is True  # answers may carry newer fields
    assert keys(schemas) & {"ge", "le", "gt", "lt"} == set()  # not JSON Schema keywords


def keys(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set(node).union(*(keys(v) for k, v in node.items() if k != "properties"))
    if isinstance(node, list):
        return set().union(*(keys(v) for v in node))
    return set()
