"""CRUD routes for every entity resource (see :mod:`node.api.resources`).

``GET`` list (with filters) and item; ``POST`` creates (a fresh id unless the body gives
one); ``PUT`` creates or replaces by id, idempotently (the same body twice writes
nothing the second time); ``PATCH`` replaces the named top-level fields; ``DELETE``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Annotated, Any

from fastapi import APIRouter, Path
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from crdt.schema import Certificate, Entity, Invalid, to_crdt
from crdt.schema.names import check_entity_id
from node.api import edits
from node.api.access import require
from node.api.body import read_object
from node.api.containers import Container, mesh_container, workspace_container
from node.api.context import context_of
from node.api.openapi import body_doc, json_doc, problems_doc, ref
from node.api.problems import ApiProblem
from node.api.resources import RESOURCES, Resource, apply_filters
from node.api.stamps import stamp_of

__all__ = ["entity_router"]

log = logging.getLogger("nxmesh.api")
Handler = Callable[[Request, Resource, str | None, str | None], Awaitable[Response]]
_EDIT_PROBLEMS = (400, 403, 404, 409, 413, 415, 422, 503, 507)


def _container(request: Request, res: Resource, workspace: str | None) -> Container:
    ctx = context_of(request)
    if res.in_workspace:
        assert workspace is not None
        return workspace_container(ctx, workspace)
    return mesh_container(ctx)


def _checked(res: Resource, ident: str | None) -> str:
    assert ident is not None
    try:
        return check_entity_id(ident)
    except ValueError:
        raise edits.not_found(res, ident) from None


def _invalid(item: Invalid) -> dict[str, Any]:
    return {"id": item.id, "errors": [dict(e) for e in item.errors]}


def _entity_response(entity: Entity | None, status: int = 200, **headers: str) -> Response:
    assert entity is not None
    return JSONResponse(to_crdt(entity), status_code=status, headers=headers or None)


def _location(request: Request, ident: str) -> str:
    return f"{request.url.path.rstrip('/')}/{ident}"


async def _list(request: Request, res: Resource, workspace: str | None, _: str | None) -> Response:
    good, bad = _container(request, res, workspace).state()
    query = {key: request.query_params.getlist(key) for key in request.query_params}
    items = apply_filters(
        res, [good[res.collection][k] for k in sorted(good[res.collection])], query
    )
    invalid = [_invalid(bad[res.collection][k]) for k in sorted(bad[res.collection])]
    return JSONResponse({"items": [to_crdt(e) for e in items], "invalid": invalid})


async def _get(
    request: Request, res: Resource, workspace: str | None, ident: str | None
) -> Response:
    good, bad = _container(request, res, workspace).state()
    ident = _checked(res, ident)
    found = good[res.collection].get(ident) or bad[res.collection].get(ident)
    if found is None:
        raise edits.not_found(res, ident)
    if isinstance(found, Invalid):
        raise ApiProblem(
            409,
            "invalid-stored",
            f"{res.singular} {ident!r} is stored but does not validate (written by a peer or "
            "another version); PUT or PATCH it to repair it",
            found.errors,
        )
    return _entity_response(found)


async def _create(
    request: Request, res: Resource, workspace: str | None, _: str | None
) -> Response:
    require(request.scope, res.write_role, f"creating a {res.singular}")
    body = await read_object(request, context_of(request).max_body)
    container = _container(request, res, workspace)
    stamp = stamp_of(request)
    outcome = container.edit(
        res, "created", lambda doc: edits.create(doc, res, container.rules, body, stamp), stamp
    )
    assert outcome.entity is not None
    return _entity_response(outcome.entity, 201, location=_location(request, outcome.entity.id))


async def _put(
    request: Request, res: Resource, workspace: str | None, ident: str | None
) -> Response:
    require(request.scope, res.write_role, f"writing a {res.singular}")
    assert ident is not None
    body = await read_object(request, context_of(request).max_body)
    container = _container(request, res, workspace)
    stamp = stamp_of(request)
    outcome = container.edit(
        res, "updated", lambda doc: edits.put(doc, res, container.rules, ident, body, stamp), stamp
    )
    return _entity_response(outcome.entity, 201 if outcome.created else 200)


async def _patch(
    request: Request, res: Resource, workspace: str | None, ident: str | None
) -> Response:
    require(request.scope, res.write_role, f"changing a {res.singular}")
    body = await read_object(request, context_of(request).max_body)
    container = _container(request, res, workspace)
    key = _checked(res, ident)
    stamp = stamp_of(request)
    outcome = container.edit(
        res, "updated", lambda doc: edits.patch(doc, res, container.rules, key, body, stamp), stamp
    )
    return _entity_response(outcome.entity)


async def _delete(
    request: Request, res: Resource, workspace: str | None, ident: str | None
) -> Response:
    require(request.scope, res.write_role, f"deleting a {res.singular}")
    container = _container(request, res, workspace)
    key = _checked(res, ident)
    extra = _workspace_empty(request, key) if res.path == "workspaces" else None
    found = container.state()[0].get(res.collection, {}).get(key)
    stamp = stamp_of(request)
    container.edit(
        res,
        "deleted",
        lambda doc: edits.delete(doc, res, container.rules, key, extra, stamp),
        stamp,
    )
    if isinstance(found, Certificate) and found.key_ref and workspace is not None:
        try:  # its sealed key goes with it (an orphan blob would be harmless)
            context_of(request).services.drop_secret(workspace, found.key_ref)
        except Exception:
            log.exception("dropping the sealed key of certificate %s failed", key)
    return Response(status_code=204)


def _workspace_empty(request: Request, workspace: str) -> Callable[[], None]:
    """A workspace is deleted only once its document (when served here) holds nothing."""

    def check() -> None:
        try:
            content = workspace_container(context_of(request), workspace)
        except ApiProblem:
            return
        good, bad = content.state()
        left = {name: len(items) + len(bad[name]) for name, items in good.items()}
        left = {name: n for name, n in left.items() if n}
        if left:
            what = ", ".join(f"{n} {name}" for name, n in sorted(left.items()))
            raise ApiProblem(
                409,
                "not-empty",
                f"workspace {workspace!r} still holds {what}; delete them first",
            )

    return check


def _signature(res: Resource, item: bool) -> inspect.Signature:
    kw = inspect.Parameter.KEYWORD_ONLY
    params = [inspect.Parameter("request", kw, annotation=Request)]
    if res.in_workspace:
        ws = Annotated[str, Path(description="The workspace's id.")]
        params.append(inspect.Parameter("workspace", kw, annotation=ws))
    if item:
        ident = Annotated[str, Path(description=f"The {res.singular}'s id.")]
        params.append(inspect.Parameter("id", kw, annotation=ident))
    return inspect.Signature(params, return_annotation=Response)


def _endpoint(handler: Handler, res: Resource, item: bool) -> Callable[..., Awaitable[Response]]:
    async def endpoint(request: Request, **path: str) -> Response:
        return await handler(request, res, path.get("workspace"), path.get("id"))

    endpoint.__signature__ = _signature(res, item)  # type: ignore[attr-defined]
    return endpoint


def _filters_doc(res: Resource) -> dict[str, Any]:
    return {
        "parameters": [
            {
                "name": f.name,
                "in": "query",
                "required": False,
                "description": f.description + " Repeat to match any of several values.",
                "schema": {"type": "array", "items": {"type": "string"}},
                "style": "form",
                "explode": True,
            }
            for f in res.filters
        ]
    }


def _add(router: APIRouter, res: Resource) -> None:
    base = f"/workspaces/{{workspace}}/{res.path}" if res.in_workspace else f"/{res.path}"
    item = base + "/{id}"
    name = res.title
    plural = res.collection
    slug = res.singular.replace(" ", "_")
    where = [404] if res.in_workspace else []
    role = f"Role: {res.write_role.name}."
    tag: list[str | Enum] = [res.path]
    router.add_api_route(
        base,
        _endpoint(_list, res, False),
        methods=["GET"],
        operation_id=f"list_{plural}",
        summary=f"List {res.singular}s",
        description="Valid entities in `items` (filtered), and stored entities that do not "
        "validate in `invalid`. Role: viewer.",
        tags=tag,
        responses={
            200: json_doc("The list", ref(f"{name}List")),
            **problems_doc([403, *where, 422]),
        },
        openapi_extra=_filters_doc(res),
    )
    router.add_api_route(
        base,
        _endpoint(_create, res, False),
        methods=["POST"],
        status_code=201,
        operation_id=f"create_{slug}",
        summary=f"Create a {res.singular}",
        description=f"A fresh id is assigned unless the body gives one. {role}",
        tags=tag,
        responses={201: json_doc("Created", ref(name)), **problems_doc(_EDIT_PROBLEMS)},
        openapi_extra=body_doc(f"{name}Create"),
    )
    router.add_api_route(
        item,
        _endpoint(_get, res, True),
        methods=["GET"],
        operation_id=f"get_{slug}",
        summary=f"Show a {res.singular}",
        description="Role: viewer. 409 when the stored entity does not validate.",
        tags=tag,
        responses={200: json_doc("The entity", ref(name)), **problems_doc([403, 404, 409])},
    )
    router.add_api_route(
        item,
        _endpoint(_put, res, True),
        methods=["PUT"],
        operation_id=f"put_{slug}",
        summary=f"Create or replace a {res.singular}",
        description="Idempotent: the same body twice writes nothing the second time. Fields "
        f"a newer version stored are kept. {role}",
        tags=tag,
        responses={
            200: json_doc("Replaced (or unchanged)", ref(name)),
            201: json_doc("Created", ref(name)),
            **problems_doc(_EDIT_PROBLEMS),
        },
        openapi_extra=body_doc(f"{name}Input"),
    )
    router.add_api_route(
        item,
        _endpoint(_patch, res, True),
        methods=["PATCH"],
        operation_id=f"patch_{slug}",
        summary=f"Change some fields of a {res.singular}",
        description="Each top-level field given replaces the stored one whole (a list or "
        f"an object is not merged); the result must validate. {role}",
        tags=tag,
        responses={200: json_doc("Changed", ref(name)), **problems_doc(_EDIT_PROBLEMS)},
        openapi_extra=body_doc(f"{name}Patch"),
    )
    router.add_api_route(
        item,
        _endpoint(_delete, res, True),
        methods=["DELETE"],
        status_code=204,
        operation_id=f"delete_{slug}",
        summary=f"Delete a {res.singular}",
        description=f"409 while other entities still refer to it. {role}",
        tags=tag,
        responses={204: {"description": "Deleted"}, **problems_doc([403, 404, 409, 503, 507])},
    )


def entity_router() -> APIRouter:
    router = APIRouter(prefix="/v1")
    for res in RESOURCES:
        _add(router, res)
    return router
