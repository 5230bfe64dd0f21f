"""Upstreams: a named group of servers and how requests are balanced across them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from crdt.schema.base import Entity, Part
from crdt.schema.names import ServerAddress
from crdt.schema.values import (
    Count,
    Duration,
    HashKey,
    MaxFails,
    Name,
    PositiveDuration,
    Text,
    Tries,
    Weight,
)

__all__ = ["BalanceMethod", "NextUpstream", "NextUpstreamCondition", "Upstream", "UpstreamServer"]

BalanceMethod = Literal[
    "round_robin", "least_conn", "ip_hash", "hash", "random", "random_two_least_conn"
]
NextUpstreamCondition = Literal[
    "error",
    "timeout",
    "invalid_header",
    "http_500",
    "http_502",
    "http_503",
    "http_504",
    "http_403",
    "http_404",
    "http_429",
    "non_idempotent",
]
MAX_SERVERS = 1024
_NO_BACKUP = frozenset({"hash", "ip_hash", "random", "random_two_least_conn"})


class UpstreamServer(Part):
    address: ServerAddress
    weight: Weight = 1
    max_fails: MaxFails = 1
    fail_timeout: Duration = 10.0
    backup: bool = False
    down: bool = False


class NextUpstream(Part):
    """When to pass a request to the next server (``proxy_next_upstream``)."""

    on: tuple[NextUpstreamCondition, ...] = ("error", "timeout")
    """Conditions; an empty tuple means ``off``."""
    tries: Tries = 0
    """0 means unlimited."""
    timeout: Duration = 0.0
    """0 means unlimited."""

    @field_validator("on")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("must not repeat a condition")
        return value


class Upstream(Entity):
    COLLECTION = "upstreams"

    name: Name
    description: Text = ""
    method: BalanceMethod = "round_robin"
    hash_key: HashKey | None = Field(default=None, validate_default=True)
    """Required with ``method="hash"``, e.g. ``$request_uri``."""
    consistent: bool = Field(default=False, validate_default=True)
    """Ketama consistent hashing; only with ``method="hash"``."""
    servers: tuple[UpstreamServer, ...] = Field(min_length=1, max_length=MAX_SERVERS)
    keepalive: Count = 0
    """Idle keep-alive connections cached per worker; 0 disables."""
    keepalive_timeout: PositiveDuration | None = None
    next_upstream: NextUpstream = NextUpstream()

    @field_validator("hash_key")
    @classmethod
    def _hash_key_needs_hash(cls, value: str | None, info: ValidationInfo) -> str | None:
        method = info.data.get("method")
        if method == "hash" and value is None:
            raise ValueError("is required when method is 'hash'")
        if method is not None and method != "hash" and value is not None:
            raise ValueError("is only used when method is 'hash'")
        return value

    @field_validator("consistent")
    @classmethod
    def _consistent_needs_hash(cls, value: bool, info: ValidationInfo) -> bool:
        method = info.data.get("method")
        if value and method is not None and method != "hash":
            raise ValueError("is only used when method is 'hash'")
        return value

    @field_validator("servers")
    @classmethod
    def _servers(
        cls, value: tuple[UpstreamServer, ...], info: ValidationInfo
    ) -> tuple[UpstreamServer, ...]:
        method = info.data.get("method")
        seen: set[str] = set()
        for i, server in enumerate(value):
            if server.address in seen:
                raise ValueError(f"server [{i}] repeats address {server.address}")
            seen.add(server.address)
            if server.backup and method in _NO_BACKUP:
                raise ValueError(f"server [{i}]: backup servers cannot be used with {method}")
        if all(s.backup for s in value):
            raise ValueError("at least one server must not be a backup")
        return value
