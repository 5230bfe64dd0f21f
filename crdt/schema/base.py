"""Base classes: every entity is frozen, carries an id, a schema version and the stamp of
its last change, and keeps fields it does not know (written by a newer version) so a
round trip never destroys them.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from crdt.schema.names import EntityId, whole_int
from crdt.schema.stamp import ChangedAt, ChangedBy

__all__ = ["SCHEMA_VERSION", "Entity", "Part"]

SCHEMA_VERSION = 1
"""Version of the schema this code writes. Readers accept newer versions: the fields they
know are validated, the rest are kept verbatim (``extra="allow"``)."""

_CONFIG = ConfigDict(
    frozen=True,
    extra="allow",
)


class Part(BaseModel):
    """A nested value inside an entity (a server, a location, TLS settings...)."""

    model_config = _CONFIG

    def unknown_fields(self) -> dict[str, Any]:
        """Fields this version does not know, kept for whoever wrote them."""
        return dict(self.__pydantic_extra__ or {})


class Entity(Part):
    """A top-level kind stored as a map keyed by ``id`` in a collection."""

    COLLECTION: ClassVar[str] = ""
    """Name of the collection map holding this kind (``virtual_hosts``...)."""

    id: EntityId
    schema_version: Annotated[int, BeforeValidator(whole_int), Field(ge=1)] = SCHEMA_VERSION
    changed_by: ChangedBy = None
    """Who made the last change (:mod:`crdt.schema.stamp`): not desired state."""
    changed_at: ChangedAt = None
