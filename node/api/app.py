"""The ASGI application of the local API: :func:`create_app`."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from node.api.access import AccessMiddleware, AccessPolicy
from node.api.body import DEFAULT_MAX_BODY
from node.api.context import ApiContext
from node.api.openapi import build_openapi
from node.api.problems import install_handlers
from node.api.routes_audit import audit_router
from node.api.routes_certs import certificate_router
from node.api.routes_entities import entity_router
from node.api.routes_node import node_router
from node.api.services import ApiServices
from node.version import __version__

__all__ = ["DEFAULT_HEARTBEAT", "create_app"]

DEFAULT_HEARTBEAT = 15.0

_DESCRIPTION = """\
HTTP/JSON on the node's Unix socket (`<state-dir>/api.sock`, mode 0660). The caller's uid
(SO_PEERCRED) maps to a role: viewer (read), operator (workspaces' content), admin
(everything). Errors are `application/problem+json` (RFC 9457) with `errors: [{field,
reason}]`. An edit is acknowledged only once it is on disk. See docs/api.md."""


def create_app(
    services: ApiServices,
    *,
    policy: AccessPolicy | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    heartbeat: float = DEFAULT_HEARTBEAT,
) -> FastAPI:
    """The API over ``services``; callers are admitted by ``policy`` (default: root and
    this process's uid are admin, nobody else may call)."""
    app = FastAPI(
        title="NxMesh node API",
        version=__version__,
        description=_DESCRIPTION,
        openapi_url="/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.nxmesh = ApiContext(services, max_body, heartbeat)
    app.include_router(entity_router())
    app.include_router(certificate_router())
    app.include_router(audit_router())
    app.include_router(node_router())
    install_handlers(app)
    app.add_middleware(AccessMiddleware, policy=policy or AccessPolicy())

    def openapi() -> dict[str, Any]:
        return build_openapi(app)

    app.openapi = openapi  # type: ignore[method-assign]
    return app
