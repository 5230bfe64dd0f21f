"""What every handler reaches through ``request.app.state``."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request

from node.api.cache import DocumentCache
from node.api.services import ApiServices

__all__ = ["ApiContext", "context_of"]


@dataclass(frozen=True)
class ApiContext:
    services: ApiServices
    max_body: int
    heartbeat: float
    """Seconds between heartbeat lines on an idle watch stream."""
    caches: dict[str, DocumentCache] = field(default_factory=dict)
    """Validated entities per document name (see :mod:`node.api.cache`)."""


def context_of(request: Request) -> ApiContext:
    ctx = request.app.state.nxmesh
    assert isinstance(ctx, ApiContext)
    return ctx
