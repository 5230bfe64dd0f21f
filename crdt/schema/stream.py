"""TCP/UDP stream proxies (nginx ``stream {}``)."""

from __future__ import annotations

from typing import Literal

from crdt.schema.base import Entity
from crdt.schema.names import EntityId, IPAddress, Port
from crdt.schema.values import Name, PositiveDuration, Text

__all__ = ["StreamProxy"]


class StreamProxy(Entity):
    COLLECTION = "streams"

    name: Name
    description: Text = ""
    enabled: bool = True
    port: Port
    address: IPAddress | None = None
    """Bind address; ``None`` listens on every address."""
    protocol: Literal["tcp", "udp"] = "tcp"
    upstream: EntityId
    connect_timeout: PositiveDuration | None = None
    proxy_timeout: PositiveDuration | None = None
    access_list: EntityId | None = None
