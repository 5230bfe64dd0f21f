"""Audit logs: who created, changed or deleted what (:mod:`crdt.audit`).

- ``GET /v1/audit``: the mesh document's log (organizations, workspaces);
- ``GET /v1/workspaces/{ws}/audit``: a workspace's log (virtual hosts, upstreams...).

Each document keeps its last 200 edits; every node serving it holds the same log.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from crdt.audit import read_audit
from crdt.schema import FieldError
from node.api.audit import audit_item
from node.api.containers import Container, mesh_container, workspace_container
from node.api.context import context_of
from node.api.openapi import json_doc, problems_doc, ref
from node.api.problems import validation_problem

__all__ = ["audit_router"]

router = APIRouter(prefix="/v1")
Workspace = Annotated[str, Path(description="The workspace's id.")]
_FILTERS = {
    "resource": "Only edits of this collection (vhosts, upstreams, workspaces...).",
    "id": "Only edits of this entity (id).",
    "user": "Only edits by this user.",
    "node": "Only edits made through this node.",
}
_TAGS: list[Any] = ["audit"]
_DOC = {
    "parameters": [
        {
            "name": name,
            "in": "query",
            "required": False,
            "description": text + " Repeat to match any of several values.",
            "schema": {"type": "array", "items": {"type": "string"}},
            "style": "form",
            "explode": True,
        }
        for name, text in _FILTERS.items()
    ]
}


def _listing(request: Request, container: Container) -> Response:
    unknown = [key for key in request.query_params if key not in _FILTERS]
    if unknown:
        allowed = ", ".join(_FILTERS)
        raise validation_problem(
            [
                FieldError(field=f"query.{k}", reason=f"is not a filter (filters: {allowed})")
                for k in unknown
            ],
            "the query",
        )
    wanted = {key: request.query_params.getlist(key) for key in _FILTERS}
    items = [audit_item(e) for e in reversed(read_audit(container.read().doc).entries)]

    def keep(item: dict[str, Any]) -> bool:
        who = item["changed_by"]
        # Only the filtered keys: a peer's stamp may carry more (Author allows extras).
        values = {
            "resource": item["resource"], "id": item["id"],
            "node": who.get("node"), "user": who.get("user"),
        }  # fmt: skip
        return all(not allowed or values[key] in allowed for key, allowed in wanted.items())

    return JSONResponse({"items": [item for item in items if keep(item)]})


@router.get(
    "/audit",
    operation_id="list_mesh_audit",
    summary="Who changed organizations and workspaces",
    description="The mesh document's last edits (at most 200), newest first: what, who "
    "(node, user, role) and when. The same on every node. Role: viewer.",
    tags=_TAGS,
    responses={200: json_doc("The log", ref("AuditList")), **problems_doc([403, 422, 503])},
    openapi_extra=_DOC,
)
async def mesh_audit(request: Request) -> Response:
    return _listing(request, mesh_container(context_of(request)))


@router.get(
    "/workspaces/{workspace}/audit",
    operation_id="list_workspace_audit",
    summary="Who changed a workspace's content",
    description="The workspace document's last edits (at most 200), newest first: virtual "
    "hosts, upstreams, streams, certificates, access lists - deletions included. The same "
    "on every node serving the workspace. Role: viewer.",
    tags=_TAGS,
    responses={200: json_doc("The log", ref("AuditList")), **problems_doc([403, 404, 422])},
    openapi_extra=_DOC,
)
async def workspace_audit(request: Request, workspace: Workspace) -> Response:
    return _listing(request, workspace_container(context_of(request), workspace))


def audit_router() -> APIRouter:
    return router
