"""Validated models of the desired state: plain types, no documents or storage.

render/ imports this package; it must stay free of pycrdt, trio and the rest of crdt/.
Modules: ``names`` (ids, host/server names, ports, IPs, addresses), ``values`` (paths,
headers, safe text, sizes, durations), ``base`` (Entity, SCHEMA_VERSION), one module per
kind, ``references`` (cross-entity rules), ``boundary`` (reading stored values), ``errors``,
``stamp`` (who changed an entity last).
"""

from crdt.schema.base import SCHEMA_VERSION, Entity, Part
from crdt.schema.boundary import Invalid, from_crdt, parse, read_collection, read_entity, to_crdt
from crdt.schema.certificate import AccessList, AccessRule, Certificate
from crdt.schema.errors import FieldError, SchemaError, field_errors, format_path
from crdt.schema.names import (
    CIDR,
    EntityId,
    EntryPointName,
    HostName,
    IPAddress,
    Port,
    ServerAddress,
    ServerName,
    new_id,
)
from crdt.schema.references import Problem, WorkspaceState, validate_references
from crdt.schema.stamp import STAMP_FIELDS, Author, Stamp, iso_utc
from crdt.schema.stream import StreamProxy
from crdt.schema.upstream import NextUpstream, Upstream, UpstreamServer
from crdt.schema.values import (
    Duration,
    FilePath,
    HashKey,
    HeaderName,
    HeaderValue,
    Name,
    PathPrefix,
    RedirectUrl,
    SafeText,
    Size,
    Text,
)
from crdt.schema.vhost import HSTS, TLS, Location, VirtualHost
from crdt.schema.workspace import EntryPoint, MeshSettings, Organization, Workspace

KINDS: tuple[type[Entity], ...] = (
    Organization,
    Workspace,
    MeshSettings,
    Upstream,
    VirtualHost,
    StreamProxy,
    Certificate,
    AccessList,
)
"""Every top-level kind; ``kind.COLLECTION`` names its collection map."""

__all__ = [
    "CIDR",
    "HSTS",
    "KINDS",
    "SCHEMA_VERSION",
    "STAMP_FIELDS",
    "TLS",
    "AccessList",
    "AccessRule",
    "Author",
    "Certificate",
    "Duration",
    "Entity",
    "EntityId",
    "EntryPoint",
    "EntryPointName",
    "FieldError",
    "FilePath",
    "HashKey",
    "HeaderName",
    "HeaderValue",
    "HostName",
    "IPAddress",
    "Invalid",
    "Location",
    "MeshSettings",
    "Name",
    "NextUpstream",
    "Organization",
    "Part",
    "PathPrefix",
    "Port",
    "Problem",
    "RedirectUrl",
    "SafeText",
    "SchemaError",
    "ServerAddress",
    "ServerName",
    "Size",
    "Stamp",
    "StreamProxy",
    "Text",
    "Upstream",
    "UpstreamServer",
    "VirtualHost",
    "Workspace",
    "WorkspaceState",
    "field_errors",
    "format_path",
    "from_crdt",
    "iso_utc",
    "new_id",
    "parse",
    "read_collection",
    "read_entity",
    "to_crdt",
    "validate_references",
]
