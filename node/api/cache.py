"""Validated entities of a document, kept between requests and refreshed incrementally.

Validating every entity on every request costs O(size of the workspace) in pydantic
(tens of milliseconds at a few hundred virtual hosts). A :class:`DocumentCache` keeps the
validated entities and observes the document (``observe_deep`` on each collection): local
edits and peers' updates alike mark the entities they touch, and only those are read and
validated again. When the document object itself is replaced (``PersistedDoc`` rebuilds it
after a refused write), everything is read again.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from pycrdt import Doc, Map

from crdt.documents import SINGLETON_KINDS, Document
from crdt.schema import Entity, Invalid

__all__ = ["DocumentCache", "Invalids", "State"]

State = dict[str, dict[str, Entity]]
"""collection -> id -> valid entity (treat as read-only)."""
Invalids = dict[str, dict[str, Invalid]]
"""collection -> id -> stored entity that does not validate."""


class DocumentCache:
    """The valid and invalid entities of one document (call from the API's thread only)."""

    def __init__(self, kinds: Sequence[type[Entity]]) -> None:
        self._kinds = {k.COLLECTION: k for k in kinds if k not in SINGLETON_KINDS}
        self._doc: Doc[Any] | None = None
        self._roots: list[tuple[Map[Any], Any]] = []
        self._dirty: dict[str, set[str]] | None = None  # None: read everything
        self.good: State = {c: {} for c in self._kinds}
        self.bad: Invalids = {c: {} for c in self._kinds}

    def _attach(self, doc: Doc[Any]) -> None:
        for old, subscription in self._roots:
            old.unobserve(subscription)
        self._doc = doc
        self._dirty = None
        self._roots = []
        for collection in self._kinds:
            root: Map[Any] = doc.get(collection, type=Map)
            self._roots.append((root, root.observe_deep(partial(self._changed, collection))))

    def _changed(self, collection: str, events: list[Any]) -> None:
        if self._dirty is None:
            return
        dirty = self._dirty.setdefault(collection, set())
        for event in events:
            path = list(event.path)
            if path:
                dirty.add(str(path[0]))
            else:
                dirty.update(str(key) for key in event.keys)

    def refresh(self, document: Document) -> tuple[State, Invalids]:
        """Bring the cache up to date with ``document`` (which wraps the observed Doc)."""
        if document.doc is not self._doc:
            self._attach(document.doc)
        if self._dirty is None:
            self._dirty = {}
            for collection, kind in self._kinds.items():
                good, bad = document.list(kind)
                self.good[collection] = {e.id: e for e in good}
                self.bad[collection] = {(i.id or ""): i for i in bad}
            return self.good, self.bad
        dirty, self._dirty = self._dirty, {}
        for collection, ids in dirty.items():
            kind = self._kinds[collection]
            for ident in ids:
                self.good[collection].pop(ident, None)
                self.bad[collection].pop(ident, None)
                found = document.get(kind, ident)
                if isinstance(found, Invalid):
                    self.bad[collection][ident] = found
                elif found is not None:
                    self.good[collection][ident] = found
        return self.good, self.bad
