"""Organizations, workspaces and mesh-wide settings (the mesh document's kinds)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator

from crdt.schema.base import Entity, Part
from crdt.schema.names import EntityId, EntryPointName, IPAddress, Port, whole_int
from crdt.schema.values import AcmeDirectory, DnsProviderSpec, Duration, Email, Name, Text

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
    acme_directory: AcmeDirectory | None = None
    """The ACME issuer of this workspace's ``tls: acme`` hosts (URL or preset name);
    ``None``: the mesh settings' (default ``letsencrypt``)."""
    acme_contact: Email | None = None
    """The ACME account's contact; ``None``: the mesh settings'."""
    acme_dns_provider: DnsProviderSpec | None = None
    """Answer DNS-01 through this provider instead of HTTP-01; ``None``: the mesh
    settings' (default: HTTP-01)."""


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
    acme_directory: AcmeDirectory | None = None
    """Default ACME issuer (URL or preset name); ``None`` means ``letsencrypt``."""
    acme_contact: Email | None = None
    acme_dns_provider: DnsProviderSpec | None = None
    """Default DNS-01 provider; ``None``: HTTP-01 across the mesh."""
    acme_order_rate: Annotated[int, BeforeValidator(whole_int), Field(ge=1, le=10_000)] = 50
    """Mesh-wide cap on new ACME orders per hour (all workspaces, all nodes)."""
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
