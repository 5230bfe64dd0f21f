"""Who changed an entity last and when: the author stamp every API edit writes.

``changed_by`` (:class:`Author`) and ``changed_at`` sit in an entity's record like any
field, but they are not desired state: the node writes them (an API body's values are
ignored), only together with a real change, and render/ and the desired-state digest
leave them out. A stamp that does not validate (written by a newer or a broken peer)
reads as None: metadata never makes an entity invalid.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    WrapValidator,
)
from pydantic_core.core_schema import ValidatorFunctionWrapHandler

from crdt.schema.values import Name

__all__ = ["STAMP_FIELDS", "Author", "ChangedAt", "ChangedBy", "Stamp", "iso_utc"]

STAMP_FIELDS = ("changed_by", "changed_at")
"""The entity keys of the stamp: never compared or written as ordinary fields."""


class Author(BaseModel):
    """Who made an edit: the node it came through, the caller's user name there (uid 1234
    when the uid has no name) and the role the caller had."""

    model_config = ConfigDict(frozen=True, extra="allow")  # as crdt.schema.base.Part

    node: Name
    user: Name
    role: Name


def iso_utc(value: datetime) -> str:
    """``2025-06-01T12:00:00.123Z``: UTC, milliseconds."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _or_none(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    try:
        return handler(value)
    except ValidationError:
        return None


ChangedBy = Annotated[
    Author | None,
    WrapValidator(_or_none),
    Field(
        description="Who made the last change (written by the node; ignored in input).",
        json_schema_extra={"readOnly": True},
    ),
]
ChangedAt = Annotated[
    AwareDatetime | None,
    WrapValidator(_or_none),
    PlainSerializer(lambda v: None if v is None else iso_utc(v), return_type=str | None),
    Field(
        description="When (the node's wall clock, UTC; ignored in input).",
        json_schema_extra={"readOnly": True},
    ),
]


@dataclass(frozen=True)
class Stamp:
    """An author and a time: what an edit writes into ``changed_by`` / ``changed_at``."""

    author: Author
    at: datetime

    @classmethod
    def now(cls, node: str, user: str, role: str) -> Stamp:
        """Stamped with the wall clock, truncated to milliseconds."""
        at = datetime.now(UTC)
        at = at.replace(microsecond=at.microsecond // 1000 * 1000)
        return cls(Author(node=node, user=user, role=role), at)

    @property
    def changed_at(self) -> str:
        return iso_utc(self.at)

    def fields(self) -> dict[str, Any]:
        """The stamp as stored: ``{"changed_by": {...}, "changed_at": "...Z"}``."""
        return {"changed_by": self.author.model_dump(mode="json"), "changed_at": self.changed_at}
