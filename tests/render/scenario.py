"""Building blocks for render tests: models with defaults, a node view, a served tree."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crdt.schema import (
    AccessList,
    Certificate,
    Entity,
    MeshSettings,
    StreamProxy,
    Upstream,
    VirtualHost,
    WorkspaceState,
)
from render import Listen, NodeView, Rendered, render
from tests.support.nginx import (
    Nginx,
    free_port,
    make_prefix,
    running_nginx,
    worker_user,
    write_tree,
)

SETTINGS = MeshSettings()
"""Default settings: entry points ``http`` (80) and ``https`` (443); views override them."""


def upstream(ident: str, *addresses: str, **over: Any) -> Upstream:
    data: dict[str, Any] = {
        "id": ident,
        "name": ident,
        "servers": [{"address": a} for a in addresses],
    }
    data.update(over)
    return Upstream.model_validate(data)


def vhost(ident: str, names: list[str], **over: Any) -> VirtualHost:
    data: dict[str, Any] = {
        "id": ident,
        "name": ident,
        "server_names": names,
        "locations": [{"path": "/", "action": "return", "status": 200, "text": ident}],
    }
    data.update(over)
    return VirtualHost.model_validate(data)


def proxy(path: str, upstream_id: str, **over: Any) -> dict[str, Any]:
    return {"path": path, "action": "proxy", "upstream": upstream_id, **over}


def certificate(ident: str, names: list[str], **over: Any) -> Certificate:
    return Certificate.model_validate({"id": ident, "name": ident, "names": names, **over})


def stream(ident: str, port: int, upstream_id: str, **over: Any) -> StreamProxy:
    data = {"id": ident, "name": ident, "port": port, "upstream": upstream_id, **over}
    return StreamProxy.model_validate(data)


def access_list(ident: str, rules: list[tuple[str, str]], default: str = "deny") -> AccessList:
    return AccessList.model_validate(
        {
            "id": ident,
            "name": ident,
            "rules": [{"action": a, "source": s} for a, s in rules],
            "default": default,
        }
    )


def workspace(*entities: Entity) -> WorkspaceState:
    return WorkspaceState.of(entities)


@dataclass(frozen=True)
class Ports:
    """Where a test's nginx listens: one loopback address, an http and an https port."""

    host: str
    http: int
    https: int

    @classmethod
    def pick(cls, host: str = "127.0.0.2") -> Ports:
        return cls(host, free_port(host), free_port(host))


def make_view(prefix: Path, ports: Ports | None = None, **over: Any) -> NodeView:
    """A view for a test node: loopback listens, one worker, readable by its workers."""
    ports = ports or Ports("127.0.0.2", 8080, 8443)
    data: dict[str, Any] = {
        "node": "test-node",
        "prefix": str(prefix),
        "entry_points": {
            "http": (Listen(ports.host, ports.http),),
            "https": (Listen(ports.host, ports.https),),
        },
        "user": worker_user(),
        "worker_processes": 1,
    }
    data.update(over)
    return NodeView(**data)


@asynccontextmanager
async def served(
    prefix: Path,
    workspaces: Mapping[str, WorkspaceState],
    view: NodeView,
    settings: MeshSettings = SETTINGS,
) -> AsyncIterator[tuple[Nginx, Rendered]]:
    """Render, write under ``prefix``, and run nginx until the block ends."""
    rendered = render(settings, workspaces, view)
    make_prefix(prefix)
    write_tree(prefix, rendered.files)
    listens = {(lst.address, lst.port) for eps in view.entry_points.values() for lst in eps}
    workers = view.worker_processes
    if workers == "auto":
        workers = os.cpu_count() or 1
    async with running_nginx(prefix, sorted(listens), workers) as nginx:
        yield nginx, rendered
