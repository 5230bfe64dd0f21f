"""Organizations, workspaces and mesh-wide settings (the mesh document's kinds)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from crdt.schema.base import Entity, Part
from crdt.schema.names import EntityId, EntryPointName, IPAddress, Port
from crdt.schema.values import Duration, Email, Name, RedirectUrl, Text

__all__ = ["EntryPoint", "MeshSettings", "Organization", "Workspace"]


class Organization(Entity):
    COLLECTION = "organizations"

    name: Name
    description: Text = ""


class Workspace(Entity):
    COLLECTION = "workspaces"

    organization: EntityId
    name: Name
    description: Text = ""


class EntryPoint(Part):
    """A logical listener: ``https`` -> port 443 with TLS."""

    port: Port
    address: IPAddress | None = None
    """Bind address; ``None`` listens on every address."""
    protocol: Literal["http", "https"] = "http"


def _default_entry_points() -> dict[str, EntryPoint]:
    return {
        "http": EntryPoint(port=80, protocol="http"),
        "https": EntryPoint(port=443, protocol="https"),
    }


class MeshSettings(Entity):
    """Mesh-wide settings; a singleton stored under id ``settings``."""

    COLLECTION = "settings"

    id: EntityId = "settings"
    entry_points: dict[EntryPointName, EntryPoint] = Field(default_factory=_default_entry_points)
    acme_directory: RedirectUrl | None = None
    acme_contact: Email | None = None
    worker_shutdown_timeout: Duration = 30.0
    reload_quiet_period: Duration = 0.5

    @field_validator("entry_points")
    @classmethod
    def _unique_ports(cls, value: dict[str, EntryPoint]) -> dict[str, EntryPoint]:
        seen: dict[tuple[str | None, int], str] = {}
        for name, ep in value.items():
            key = (ep.address, ep.port)
            if key in seen:
                raise ValueError(f"{name!r} and {seen[key]!r} listen on the same port {ep.port}")
            seen[key] = name
        return value
