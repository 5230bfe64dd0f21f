"""Certificate routes besides CRUD: key-pair upload, renewal, status, ACME subjects.

- ``POST /v1/workspaces/{ws}/certificates/key-pair``: a manual certificate from a PEM
  chain and its key (the key sealed in the workspace vault, never returned);
- ``PUT /v1/workspaces/{ws}/certificates/{id}/key-pair``: create or replace that pair;
- ``POST /v1/workspaces/{ws}/certificates/{id}/renew``: ask the mesh to renew an ACME
  certificate now (the backoff is skipped once);
- ``GET /v1/workspaces/{ws}/certificates/{id}/status``: expiry, renewal, ACME state and
  whether this node installed it;
- ``GET /v1/workspaces/{ws}/acme``: every ACME subject with its state and last error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pycrdt import Map
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from crdt.audit import record
from crdt.documents import Document
from crdt.schema import Certificate, FieldError, field_errors, new_id, to_crdt
from crdt.schema.names import check_entity_id
from node.acme import plan, records
from node.acme.upload import UploadError, pair_entity
from node.api import edits, models
from node.api.access import Role, require
from node.api.body import read_object
from node.api.containers import Container, workspace_container
from node.api.context import context_of
from node.api.openapi import body_doc, json_doc, problems_doc, ref
from node.api.problems import ApiProblem, validation_problem
from node.api.resources import RESOURCES
from node.api.services import SecretUnavailable
from node.api.stamps import stamp_of

__all__ = ["certificate_router"]

log = logging.getLogger("nxmesh.api")
router = APIRouter(prefix="/v1")
_RES = next(r for r in RESOURCES if r.kind is Certificate)
_EDIT_PROBLEMS = [400, 403, 404, 409, 413, 415, 422, 503, 507]
Workspace = Annotated[str, Path(description="The workspace's id.")]
Ident = Annotated[str, Path(description="The certificate's id.")]
_TAGS: list[Any] = ["certificates"]


def _pair(body: Mapping[str, Any]) -> models.KeyPairRequest:
    try:
        return models.KeyPairRequest.model_validate(body)
    except ValidationError as exc:
        raise validation_problem(field_errors(exc)) from None


def _certificate(container: Container, ident: str) -> Certificate:
    try:
        check_entity_id(ident)
    except ValueError:
        raise edits.not_found(_RES, ident) from None
    found = container.state()[0]["certificates"].get(ident)
    if not isinstance(found, Certificate):
        raise edits.not_found(_RES, ident)
    return found


def _seal(request: Request, workspace: str, key_ref: str, key: bytes) -> None:
    try:
        context_of(request).services.seal_secret(workspace, key_ref, key)
    except SecretUnavailable as exc:
        raise ApiProblem(
            409, "cannot-seal", f"this node cannot seal the key now: {exc}; retry shortly"
        ) from None


def _drop(request: Request, workspace: str, key_ref: str | None) -> None:
    if not key_ref:
        return
    try:
        context_of(request).services.drop_secret(workspace, key_ref)
    except Exception:  # the entity change is done; an orphan sealed blob is harmless
        log.exception("dropping sealed key %s failed", key_ref)


def _check_name(container: Container, name: str, ident: str) -> None:
    for other in container.state()[0]["certificates"].values():
        if other.id != ident and getattr(other, "name", None) == name:
            raise ApiProblem(
                409,
                "name-taken",
                f"the name {name!r} is taken by certificate {other.id}; names are unique",
                [FieldError(field="name", reason=f"is already used by certificate {other.id}")],
            )


async def _store_pair(
    request: Request, workspace: str, ident: str, body: models.KeyPairRequest, create: bool
) -> Response:
    container = workspace_container(context_of(request), workspace)
    previous = None if create else container.state()[0]["certificates"].get(ident)
    if isinstance(previous, Certificate) and previous.source == "acme":
        raise ApiProblem(
            409,
            "acme-managed",
            f"certificate {ident!r} is issued by ACME; upload a manual certificate instead",
        )
    name = body.name or (previous.name if isinstance(previous, Certificate) else None)
    if name is None:
        raise validation_problem([FieldError(field="name", reason="is required")])
    try:
        fields, key_ref, key = pair_entity(
            ident,
            name,
            body.certificate,
            body.key,
            previous if isinstance(previous, Certificate) else None,
        )
    except UploadError as exc:
        raise validation_problem(exc.errors) from None
    _check_name(container, name, ident)
    _seal(request, workspace, key_ref, key)
    stamp = stamp_of(request)
    try:
        if create:
            outcome = container.edit(
                _RES,
                "created",
                lambda doc: edits.create(doc, _RES, container.rules, fields, stamp),
                stamp,
            )
        else:
            outcome = container.edit(
                _RES,
                "updated",
                lambda doc: edits.put(doc, _RES, container.rules, ident, fields, stamp),
                stamp,
            )
    except BaseException:
        _drop(request, workspace, key_ref)
        raise
    if isinstance(previous, Certificate) and previous.key_ref != key_ref:
        _drop(request, workspace, previous.key_ref)
    assert outcome.entity is not None
    headers = {"location": f"/v1/workspaces/{workspace}/certificates/{ident}"} if create else {}
    return JSONResponse(
        to_crdt(outcome.entity),
        status_code=201 if create or outcome.created else 200,
        headers=headers or None,
    )


@router.post(
    "/workspaces/{workspace}/certificates/key-pair",
    status_code=201,
    operation_id="upload_certificate",
    summary="Create a manual certificate from a key pair",
    description="The chain (PEM, leaf first) and its private key; names and validity come "
    "from the certificate. The key is sealed in the workspace vault and installed on every "
    "serving node; it is never returned. Role: operator.",
    tags=_TAGS,
    responses={201: json_doc("Created", ref("Certificate")), **problems_doc(_EDIT_PROBLEMS)},
    openapi_extra=body_doc("KeyPairRequest"),
)
async def upload(request: Request, workspace: Workspace) -> Response:
    require(request.scope, Role.operator, "uploading a certificate")
    body = _pair(await read_object(request, context_of(request).max_body))
    return await _store_pair(request, workspace, new_id(), body, True)


@router.put(
    "/workspaces/{workspace}/certificates/{id}/key-pair",
    operation_id="put_certificate_key_pair",
    summary="Create or replace a manual certificate's key pair",
    description="As the upload, for a given id: replaces the chain and the key (a new sealed "
    "key reference) and keeps the name unless one is given. Refused for ACME certificates. "
    "Role: operator.",
    tags=_TAGS,
    responses={
        200: json_doc("Replaced", ref("Certificate")),
        201: json_doc("Created", ref("Certificate")),
        **problems_doc(_EDIT_PROBLEMS),
    },
    openapi_extra=body_doc("KeyPairRequest"),
)
async def put_pair(request: Request, workspace: Workspace, id: Ident) -> Response:
    require(request.scope, Role.operator, "uploading a certificate")
    try:
        ident = check_entity_id(id)
    except ValueError:
        raise validation_problem([FieldError(field="id", reason="is not a valid id")]) from None
    body = _pair(await read_object(request, context_of(request).max_body))
    return await _store_pair(request, workspace, ident, body, False)


@router.post(
    "/workspaces/{workspace}/certificates/{id}/renew",
    status_code=202,
    operation_id="renew_certificate",
    summary="Renew an ACME certificate now",
    description="Asks the mesh to order a new certificate for the names of this one now, "
    "whatever its expiry, skipping a backoff once. Progress in `.../status` and "
    "`/v1/workspaces/{ws}/acme`. Role: operator.",
    tags=_TAGS,
    responses={
        202: json_doc("Requested", ref("RenewalRequested")),
        **problems_doc([403, 404, 409, 503, 507]),
    },
)
async def renew(request: Request, workspace: Workspace, id: Ident) -> Response:
    require(request.scope, Role.operator, "renewing a certificate")
    ctx = context_of(request)
    container = workspace_container(ctx, workspace)
    cert = _certificate(container, id)
    if cert.source != "acme":
        raise ApiProblem(
            409,
            "not-acme",
            f"certificate {cert.name!r} is manual: upload a new key pair to renew it",
        )
    subject = plan.subject_id(cert.names)
    if not any(s["subject"] == subject for s in ctx.services.acme_subjects(workspace)):
        raise ApiProblem(
            409,
            "not-wanted",
            f"no enabled tls: acme virtual host has exactly the names of {cert.name!r}; "
            "it is not renewed",
        )
    now = time.time()
    stamp = stamp_of(request)

    def write(doc: Document) -> edits.Outcome:
        doc.doc.get(records.RENEW, type=Map)[subject] = now
        record(doc.doc, stamp, "renewal-requested", _RES.collection, cert.id, cert.name)
        return edits.Outcome(cert.id, None, name=cert.name)

    container.edit(_RES, "renewal-requested", write, stamp)
    return JSONResponse({"subject": subject, "requested_at": now}, status_code=202)


@router.get(
    "/workspaces/{workspace}/certificates/{id}/status",
    operation_id="get_certificate_status",
    summary="A certificate's expiry, renewal and installation",
    description="Seconds to expiry, when it renews, the ACME state and last error of its "
    "names, and whether this node installed it. Role: viewer.",
    tags=_TAGS,
    responses={
        200: json_doc("Status", ref("CertificateStatus")),
        **problems_doc([403, 404]),
    },
)
async def certificate_status(request: Request, workspace: Workspace, id: Ident) -> Response:
    ctx = context_of(request)
    container = workspace_container(ctx, workspace)
    cert = _certificate(container, id)
    return JSONResponse(ctx.services.certificate_status(workspace, cert))


@router.get(
    "/workspaces/{workspace}/acme",
    operation_id="list_acme_subjects",
    summary="ACME orders: every set of names a tls: acme host needs",
    description="State (pending, ordering, valid, failed, rate-limited), the last ACME "
    "error, failures and backoff, the node ordering, the newest certificate and its "
    "expiry. The same on every node serving the workspace. Role: viewer.",
    tags=_TAGS,
    responses={200: json_doc("Subjects", ref("AcmeSubjectList")), **problems_doc([403, 404])},
)
async def acme_subjects(request: Request, workspace: Workspace) -> Response:
    ctx = context_of(request)
    workspace_container(ctx, workspace)  # 404 unless it exists and is served here
    return JSONResponse({"items": ctx.services.acme_subjects(workspace)})


def certificate_router() -> APIRouter:
    return router
