"""Errors as RFC 9457 problem details (``application/problem+json``).

Every refusal is an :class:`ApiProblem` carrying a status, a short slug (the ``type`` is
``urn:nxmesh:problem:<slug>``), a title, a detail meant for the operator, and for input
errors ``errors: [{"field": "locations[0].upstream", "reason": "..."}]``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from crdt.schema import FieldError, SchemaError, format_path
from crdt.store import StoreError, StoreFull, StoreReadOnly

__all__ = [
    "PROBLEM_JSON",
    "TYPE_PREFIX",
    "ApiProblem",
    "install_handlers",
    "problem_response",
    "validation_problem",
]

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:nxmesh:problem:"
log = logging.getLogger("nxmesh.api")

_TITLES = {
    400: "Bad request",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Invalid input",
    500: "Internal error",
    503: "Store unavailable",
    507: "Store full",
}


class ApiProblem(Exception):
    """A refusal to answer with a problem document; nothing was written."""

    def __init__(
        self,
        status: int,
        slug: str,
        detail: str,
        errors: Iterable[FieldError] = (),
        *,
        title: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.slug = slug
        self.title = title or _TITLES.get(status, "Error")
        self.detail = detail
        self.errors = list(errors)
        self.extra = dict(extra or {})
        super().__init__(detail)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": TYPE_PREFIX + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors:
            body["errors"] = [dict(e) for e in self.errors]
        body.update(self.extra)
        return body


def problem_response(problem: ApiProblem, headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse(
        problem.to_dict(), status_code=problem.status, media_type=PROBLEM_JSON, headers=headers
    )


def validation_problem(errors: Iterable[FieldError], what: str = "the request body") -> ApiProblem:
    """422 naming every failing field."""
    errors = list(errors)
    fields = ", ".join(e["field"] for e in errors[:5]) + ("..." if len(errors) > 5 else "")
    return ApiProblem(422, "validation", f"{what} is invalid: {fields}", errors)


def store_problem(exc: StoreError) -> ApiProblem:
    """507 when the disk is full, 503 when the store refuses writes or is damaged."""
    if isinstance(exc, StoreFull):
        return ApiProblem(507, "store-full", str(exc))
    slug = "store-read-only" if isinstance(exc, StoreReadOnly) else "store-unavailable"
    return ApiProblem(503, slug, str(exc))


async def _on_problem(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiProblem)
    return problem_response(exc)


async def _on_schema_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, SchemaError)
    return problem_response(validation_problem(exc.errors))


async def _on_store_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StoreError)
    log.warning("store refused: %s", exc)
    return problem_response(store_problem(exc))


async def _on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    if status == 404:
        detail = f"no such resource: {request.url.path}"
    elif status == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    else:
        detail = str(exc.detail)
    slug = {404: "not-found", 405: "method-not-allowed"}.get(status, "http-error")
    headers = dict(exc.headers or {})
    return problem_response(ApiProblem(status, slug, detail), headers=headers)


async def _on_request_validation(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        FieldError(field=format_path(tuple(e["loc"])) or "(request)", reason=str(e["msg"]))
        for e in exc.errors()
    ]
    return problem_response(validation_problem(errors, "the request"))


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error answering %s %s", request.method, request.url.path)
    detail = f"the node failed to answer ({type(exc).__name__}); see the daemon's log"
    return problem_response(ApiProblem(500, "internal", detail))


def install_handlers(app: FastAPI) -> None:
    """Every error the app can meet becomes a problem document."""
    app.add_exception_handler(ApiProblem, _on_problem)
    app.add_exception_handler(SchemaError, _on_schema_error)
    app.add_exception_handler(StoreError, _on_store_error)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(RequestValidationError, _on_request_validation)
    app.add_exception_handler(Exception, _on_unexpected)
