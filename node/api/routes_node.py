"""Node-level routes: members (nodes), labels, workspace assignments, revocation,
invites, status, any node's status and applied configuration (node.report), the watch
stream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Annotated, Any, TypeVar

import trio
from fastapi import APIRouter, Path
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from crdt.membership import ALL_WORKSPACES
from crdt.schema import FieldError, field_errors
from node.api import models
from node.api.access import Role, peer_of, require, role_of
from node.api.body import read_object
from node.api.containers import mesh_container
from node.api.context import ApiContext, context_of
from node.api.events import Subscription
from node.api.openapi import body_doc, json_doc, problems_doc, ref
from node.api.problems import PROBLEM_JSON, ApiProblem, validation_problem
from node.api.services import Member, NodeRefused, NodeUnreachable, NoSuchFile, UnknownNode
from node.report import valid_path
from node.version import __version__

__all__ = ["node_router"]

M = TypeVar("M", bound=BaseModel)
NodeName = Annotated[str, Path(description="The node's name or key fingerprint.")]
router = APIRouter(prefix="/v1")


def _validate(model: type[M], body: Mapping[str, Any]) -> M:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise validation_problem(field_errors(exc)) from None


def _member(members: list[Member], name: str) -> Member:
    for m in members:
        if name in (m["name"], m["key"]):
            return m
    raise ApiProblem(404, "not-found", f"node {name!r} is not a member of this mesh")


_NODE_FILTERS = ("state", "label", "workspace")


def _label_match(member: Member, wanted: str) -> bool:
    key, sep, value = wanted.partition("=")
    return key in member["labels"] and (not sep or member["labels"][key] == value)


def _serves(member: Member, workspaces: list[str]) -> bool:
    served = member["workspaces"]
    return ALL_WORKSPACES in served or any(ws in served for ws in workspaces)


@router.get(
    "/nodes",
    operation_id="list_nodes",
    summary="List the mesh's nodes",
    description="Role: viewer. Filters: `state` (alive, suspect, dead, left, revoked), "
    "`label` (`key` or `key=value`) and `workspace` (an id: the nodes serving it, those "
    "assigned `*` included); repeat one to match any of several values.",
    tags=["nodes"],
    responses={200: json_doc("Nodes", ref("MemberList")), **problems_doc([403, 422])},
    openapi_extra={
        "parameters": [
            {
                "name": name,
                "in": "query",
                "required": False,
                "schema": {"type": "array", "items": {"type": "string"}},
            }
            for name in _NODE_FILTERS
        ]
    },
)
async def list_nodes(request: Request) -> Response:
    unknown = [k for k in request.query_params if k not in _NODE_FILTERS]
    filters = ", ".join(_NODE_FILTERS)
    if unknown:
        raise validation_problem(
            [
                FieldError(field=f"query.{k}", reason=f"is not a filter ({filters})")
                for k in unknown
            ],
            "the query",
        )
    members = context_of(request).services.members()
    states = request.query_params.getlist("state")
    labels = request.query_params.getlist("label")
    workspaces = request.query_params.getlist("workspace")
    if states:
        members = [m for m in members if m["state"] in states]
    if labels:
        members = [m for m in members if any(_label_match(m, w) for w in labels)]
    if workspaces:
        members = [m for m in members if _serves(m, workspaces)]
    return JSONResponse({"items": list(members)})


@router.get(
    "/nodes/{name}",
    operation_id="get_node",
    summary="Show a node",
    description="Role: viewer.",
    tags=["nodes"],
    responses={200: json_doc("The node", ref("Member")), **problems_doc([403, 404])},
)
async def get_node(request: Request, name: NodeName) -> Response:
    return JSONResponse(dict(_member(context_of(request).services.members(), name)))


_UNREACHABLE_DOC: dict[int | str, dict[str, Any]] = {
    503: {
        "description": "The node did not answer (dead, left, unreachable, timed out)",
        "content": {PROBLEM_JSON: {"schema": ref("Problem")}},
    }
}


def _unreachable(exc: NodeUnreachable) -> ApiProblem:
    return ApiProblem(503, "node-unreachable", str(exc), title="Node unreachable")


@router.get(
    "/nodes/{name}/status",
    operation_id="get_node_status",
    summary="A node's last apply, quarantined units and metrics",
    description="Any node's: this node answers for itself, another node over the mesh "
    "(only what this node may see: nothing of workspaces it does not serve). Role: viewer.",
    tags=["nodes"],
    responses={
        200: json_doc("The node's report", ref("NodeReport")),
        **problems_doc([403, 404]),
        **_UNREACHABLE_DOC,
    },
)
async def node_status(request: Request, name: NodeName) -> Response:
    services = context_of(request).services
    target = _member(services.members(), name)
    try:
        report = await services.node_status(target["name"])
    except UnknownNode as exc:
        raise ApiProblem(404, "not-found", str(exc)) from None
    except NodeUnreachable as exc:
        raise _unreachable(exc) from None
    return JSONResponse(report, headers={"cache-control": "no-store"})


@router.get(
    "/nodes/{name}/config",
    operation_id="get_node_config",
    summary="A node's applied nginx configuration",
    description="The files of the tree the node serves (path, size, sha256); with `path`, "
    "also that file's content (cut at 1 MiB). Files of workspaces this node does not serve "
    "are left out, and lines naming them hidden in shared files. Role: viewer.",
    tags=["nodes"],
    responses={
        200: json_doc("The node's files", ref("NodeConfig")),
        **problems_doc([403, 404, 422]),
        **_UNREACHABLE_DOC,
    },
    openapi_extra={
        "parameters": [
            {
                "name": "path",
                "in": "query",
                "required": False,
                "description": "A file of the list, e.g. nginx.conf.",
                "schema": {"type": "string"},
            }
        ]
    },
)
async def node_config(request: Request, name: NodeName) -> Response:
    unknown = [k for k in request.query_params if k != "path"]
    if unknown:
        raise validation_problem(
            [FieldError(field=f"query.{k}", reason="is not a parameter (path)") for k in unknown],
            "the query",
        )
    path = request.query_params.get("path")
    if path is not None and not valid_path(path):
        raise validation_problem(
            [FieldError(field="query.path", reason="must be a relative path inside the tree")],
            "the query",
        )
    services = context_of(request).services
    target = _member(services.members(), name)
    try:
        report = await services.node_config(target["name"], path)
    except UnknownNode as exc:
        raise ApiProblem(404, "not-found", str(exc)) from None
    except NodeUnreachable as exc:
        raise _unreachable(exc) from None
    except NoSuchFile as exc:
        reason = f"is not a file of {target['name']}'s applied configuration"
        raise validation_problem(
            [FieldError(field="query.path", reason=reason)], "the query"
        ) from (exc)
    return JSONResponse(report, headers={"cache-control": "no-store"})


@router.put(
    "/nodes/{name}/labels",
    operation_id="put_node_labels",
    summary="Replace a node's labels",
    description="Role: admin.",
    tags=["nodes"],
    responses={
        200: json_doc("The node", ref("Member")),
        **problems_doc([400, 403, 404, 409, 413, 415, 422, 503, 507]),
    },
    openapi_extra=body_doc("LabelsRequest"),
)
async def put_labels(request: Request, name: NodeName) -> Response:
    require(request.scope, Role.admin, "changing a node's labels")
    ctx = context_of(request)
    body = _validate(models.LabelsRequest, await read_object(request, ctx.max_body))
    target = _member(ctx.services.members(), name)
    member = await _changed(ctx.services.set_labels(target["name"], dict(body.labels)))
    ctx.services.events.publish({"type": "member", "op": "labels", "node": member["name"]})
    return JSONResponse(dict(member))


async def _changed(change: Awaitable[Member]) -> Member:
    """The node after ``change``: 404 for an unknown node, 409 for one that refuses it."""
    try:
        return await change
    except UnknownNode as exc:
        raise ApiProblem(404, "not-found", str(exc)) from None
    except NodeRefused as exc:
        raise ApiProblem(409, "refused", str(exc)) from None


def _workspace_ids(ctx: ApiContext, items: list[str]) -> list[str]:
    """The ids ``items`` (ids or names of the mesh document's workspaces, or ``*`` alone)
    stand for; 422 naming each item that is unknown, ambiguous or ``*`` among others."""
    if ALL_WORKSPACES in items:
        if set(items) == {ALL_WORKSPACES}:
            return [ALL_WORKSPACES]
        reason = "'*' (every workspace) must be alone in the list"
        raise validation_problem(
            FieldError(field=f"workspaces[{i}]", reason=reason)
            for i, item in enumerate(items)
            if item == ALL_WORKSPACES
        )
    state, invalid = mesh_container(ctx).state()
    known = state.get("workspaces", {})
    broken = invalid.get("workspaces", {})
    ids: set[str] = set()
    errors: list[FieldError] = []
    for i, item in enumerate(items):
        matches = {ws for ws, w in known.items() if item in (ws, getattr(w, "name", None))}
        if len(matches) == 1:
            ids |= matches
            continue
        if matches:
            which = ", ".join(sorted(matches))
            reason = f"{item!r} names {len(matches)} workspaces; give one id ({which})"
        elif item in broken:
            reason = f"workspace {item!r} is stored invalid; repair it first"
        else:
            reason = f"no workspace has the id or name {item!r}"
        errors.append(FieldError(field=f"workspaces[{i}]", reason=reason))
    if errors:
        raise validation_problem(errors)
    return sorted(ids)


@router.put(
    "/nodes/{name}/workspaces",
    operation_id="put_node_workspaces",
    summary="Replace the workspaces a node serves",
    description="The node replicates and renders exactly these workspaces: ids or names "
    '(`["*"]`: every workspace, present and future; `[]`: none, the node keeps its '
    "membership only). Written in one transaction of the mesh document. Role: admin.",
    tags=["nodes"],
    responses={
        200: json_doc("The node", ref("Member")),
        **problems_doc([400, 403, 404, 409, 413, 415, 422, 503, 507]),
    },
    openapi_extra=body_doc("WorkspacesRequest"),
)
async def put_workspaces(request: Request, name: NodeName) -> Response:
    require(request.scope, Role.admin, "assigning a node's workspaces")
    ctx = context_of(request)
    body = _validate(models.WorkspacesRequest, await read_object(request, ctx.max_body))
    target = _member(ctx.services.members(), name)
    workspaces = _workspace_ids(ctx, list(body.workspaces))
    member = await _changed(ctx.services.set_workspaces(target["name"], workspaces))
    if member["workspaces"] != target["workspaces"]:
        event = {"type": "member", "op": "workspaces", "node": member["name"]}
        ctx.services.events.publish(event)
    return JSONResponse(dict(member))


@router.post(
    "/nodes/{name}/revoke",
    operation_id="revoke_node",
    summary="Revoke a node for good",
    description="The node's key is never a member again. Role: admin.",
    tags=["nodes"],
    responses={200: json_doc("The node", ref("Member")), **problems_doc([403, 404, 409, 503, 507])},
)
async def revoke(request: Request, name: NodeName) -> Response:
    require(request.scope, Role.admin, "revoking a node")
    services = context_of(request).services
    target = _member(services.members(), name)
    member = await _changed(services.revoke(target["name"]))
    services.events.publish({"type": "member", "op": "revoked", "node": member["name"]})
    return JSONResponse(dict(member))


@router.post(
    "/invites",
    status_code=201,
    operation_id="create_invite",
    summary="Create a join token",
    description="Returns the token once; only a hash of its secret is stored. Role: admin.",
    tags=["nodes"],
    responses={
        201: json_doc("The token", ref("Invite")),
        **problems_doc([400, 403, 413, 415, 422, 503, 507]),
    },
    openapi_extra=body_doc("InviteRequest"),
)
async def create_invite(request: Request) -> Response:
    require(request.scope, Role.admin, "creating an invite")
    ctx = context_of(request)
    body = _validate(models.InviteRequest, await read_object(request, ctx.max_body))
    try:
        invite = await ctx.services.create_invite(body.ttl, body.uses)
    except NodeRefused as exc:
        raise ApiProblem(409, "refused", str(exc)) from None
    return JSONResponse(dict(invite), status_code=201)


@router.get(
    "/status",
    operation_id="get_status",
    summary="This node and the mesh in brief",
    description="Role: viewer.",
    tags=["status"],
    responses={200: json_doc("Status", ref("Status")), **problems_doc([403, 503])},
)
async def status(request: Request) -> Response:
    ctx = context_of(request)
    role = role_of(request.scope)
    peer = peer_of(request.scope)
    caller = {"uid": peer.uid if peer else None, "role": role.name if role else None}
    body = {
        **ctx.services.status(),
        "node": ctx.services.node_name,
        "version": __version__,
        "api": {"caller": caller, "watchers": ctx.services.events.watchers},
    }
    return JSONResponse(body)


def _line(event: Mapping[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":"), default=str).encode() + b"\n"


_BATCH = 511
"""Events queued behind the first one that are sent with it, at most."""
_LINGER = 0.05
"""How long the first event of a chunk waits for others."""


async def _lines(
    sub: Subscription, hello: dict[str, Any], heartbeat: float
) -> AsyncIterator[bytes]:
    try:
        yield _line(hello)
        while True:
            event: dict[str, Any] | None = None
            ended = False
            with trio.move_on_after(heartbeat):  # never yield inside a cancel scope
                try:
                    event = await sub.receive()
                except trio.EndOfChannel:
                    ended = True
            if ended:
                if sub.overflowed:
                    yield _line({"type": "overflow", "detail": "fell behind; re-read and watch"})
                return
            if event is None:
                yield _line({"type": "heartbeat"})
                continue
            # A burst (every member's new status after an edit, arriving over a second or
            # so) goes out in a few chunks, not one write per event. Events carry the time
            # they happened (``at``): lingering delays only their delivery.
            batch = sub.pending(_BATCH)
            if len(batch) < _BATCH:  # a backlog goes out at once
                await trio.sleep(_LINGER)
                batch += sub.pending(_BATCH - len(batch))
            yield b"".join([_line(event), *map(_line, batch)])
    finally:
        sub.close()


@router.get(
    "/watch",
    operation_id="watch",
    summary="Stream of changes and member events (NDJSON)",
    description="One JSON object per line: `hello` first, then `change` (an edit made "
    "through this node's API), `document` (an update from a peer), `member` (membership), "
    "`heartbeat` when idle, and `overflow` (the stream ends: the client fell behind and "
    "should re-read and watch again). Role: viewer.",
    tags=["status"],
    responses={
        200: {
            "description": "Newline-delimited JSON events",
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
        },
        **problems_doc([403]),
    },
)
async def watch(request: Request) -> Response:
    ctx = context_of(request)
    hub = ctx.services.events
    sub = hub.open()  # subscribed before the response starts: nothing after it is missed
    hello = {"type": "hello", "node": ctx.services.node_name, "seq": hub.last_seq}
    return StreamingResponse(
        _lines(sub, hello, ctx.heartbeat),
        media_type="application/x-ndjson",
        headers={"cache-control": "no-store"},
    )


def node_router() -> APIRouter:
    return router
