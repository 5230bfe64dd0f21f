"""The documents resources live in: the mesh document, or one workspace's document.

A :class:`Container` knows its persisted document, how to wrap it, its cache of validated
entities and the cross-entity rules of its kinds; :meth:`Container.edit` runs an edit
durably, then hands the update to the daemon (``published``) and announces the change on
the watch stream.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from crdt.documents import (
    MESH_DOCUMENT,
    Document,
    MeshDocument,
    WorkspaceDocument,
    workspace_document,
)
from crdt.schema import Invalid, Problem, Stamp, Workspace, WorkspaceState, validate_references
from crdt.schema.names import check_entity_id
from crdt.store import PersistedDoc
from node.api.audit import change_event
from node.api.cache import DocumentCache, Invalids, State
from node.api.context import ApiContext
from node.api.edits import Checker, Outcome, Rules
from node.api.problems import ApiProblem
from node.api.resources import Resource
from node.api.scope import affected

__all__ = ["Container", "mesh_container", "mesh_problems", "workspace_container"]

log = logging.getLogger("nxmesh.api")
_WORKSPACE_COLLECTIONS = ("upstreams", "virtual_hosts", "streams", "certificates", "access_lists")


@dataclass(frozen=True)
class Container:
    ctx: ApiContext
    name: str
    persisted: PersistedDoc
    document: type[Document]
    checker: Checker
    workspace: str | None = None
    narrow: Callable[[State, str, str], State] | None = None

    def read(self) -> Document:
        return self.document(self.persisted.doc)

    def state(self, doc: Document | None = None) -> tuple[State, Invalids]:
        """The valid and the invalid entities, from the cache (refreshed first)."""
        cache = self.ctx.caches.get(self.name)
        if cache is None:
            cache = self.ctx.caches[self.name] = DocumentCache(self.document.KINDS)
        return cache.refresh(doc if doc is not None else self.read())

    @property
    def rules(self) -> Rules:
        return Rules(self.checker, lambda doc: self.state(doc)[0], self.narrow)

    def edit(
        self,
        res: Resource,
        op: str,
        fn: Callable[[Document], Outcome],
        stamp: Stamp | None = None,
    ) -> Outcome:
        """Run ``fn`` durably; on a change, publish the update and a ``change`` event
        (with ``stamp``'s author: pass the stamp ``fn`` wrote)."""
        outcome, update = self.document.edit(self.persisted, fn)
        if update is None:
            return outcome
        services = self.ctx.services
        try:
            services.published(self.name, update)
        except Exception:  # the edit is durable and acknowledged; broadcasting is best effort
            log.exception("publishing an update of %s failed", self.name)
        services.events.publish(
            change_event(
                origin="local",
                node=services.node_name,
                document=self.name,
                resource=res.path,
                ident=outcome.id,
                name=outcome.name,
                op="created" if outcome.created else op,
                fields=outcome.fields,
                changed_by=stamp.author if stamp is not None else None,
                changed_at=stamp.at if stamp is not None else None,
            )
        )
        return outcome


def mesh_problems(state: State) -> list[Problem]:
    """Broken references of the mesh document: a workspace's organization must exist."""
    orgs = state.get("organizations", {})
    return [
        Problem(
            "workspaces",
            wid,
            "organization",
            f"refers to organization {ws.organization!r}, which does not exist",
        )
        for wid, ws in state.get("workspaces", {}).items()
        if isinstance(ws, Workspace) and ws.organization not in orgs
    ]


def mesh_container(ctx: ApiContext) -> Container:
    persisted = ctx.services.document(MESH_DOCUMENT)
    if persisted is None:
        raise ApiProblem(503, "store-unavailable", "the mesh document is not open on this node")
    return Container(ctx, MESH_DOCUMENT, persisted, MeshDocument, mesh_problems)


def workspace_container(ctx: ApiContext, workspace: str) -> Container:
    """The workspace's document; 404 when the workspace does not exist or is not served."""
    mesh = mesh_container(ctx)
    try:
        check_entity_id(workspace)
    except ValueError:
        raise ApiProblem(404, "not-found", f"workspace {workspace!r} does not exist") from None
    reader = MeshDocument(mesh.persisted.doc)
    if reader.get(Workspace, workspace) is None:
        raise ApiProblem(404, "not-found", f"workspace {workspace!r} does not exist")
    name = workspace_document(workspace)
    persisted = ctx.services.document(name)
    if persisted is None:
        ctx.caches.pop(name, None)  # no longer served here: let its document go
        raise ApiProblem(
            404,
            "not-served",
            f"workspace {workspace!r} is not served by node {ctx.services.node_name!r}; "
            "use a node that serves it",
        )
    settings = reader.settings()
    known = None if isinstance(settings, Invalid) else settings

    def checker(state: State) -> list[Problem]:
        parts: dict[str, Any] = {c: state.get(c, {}) for c in _WORKSPACE_COLLECTIONS}
        return validate_references(WorkspaceState(**parts), known)

    return Container(ctx, name, persisted, WorkspaceDocument, checker, workspace, affected)
