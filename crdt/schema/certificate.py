"""Certificate metadata and access lists. Private keys are never here: only a reference
to the key sealed with the workspace data key."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BeforeValidator, Field, ValidationInfo, field_validator

from crdt.schema.base import Entity, Part
from crdt.schema.names import ServerName, check_cidr
from crdt.schema.values import CertificatePem, KeyRef, Name, Text

__all__ = ["AccessList", "AccessRule", "AccessSource", "Certificate", "Fingerprint"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _fingerprint(value: object) -> str:
    if not isinstance(value, str) or not _SHA256.match(value.lower().replace(":", "")):
        raise ValueError("must be a SHA-256 fingerprint (64 hex digits)")
    return value.lower().replace(":", "")


Fingerprint = Annotated[str, BeforeValidator(_fingerprint)]


def _access_source(value: object) -> str:
    return "all" if value == "all" else check_cidr(value)


AccessSource = Annotated[str, BeforeValidator(_access_source)]
"""A CIDR network (a bare IP is a single host) or ``all``."""


class Certificate(Entity):
    COLLECTION = "certificates"

    name: Name
    names: tuple[ServerName, ...] = Field(min_length=1, max_length=100)
    """Names the certificate covers; ``*.example.com`` allowed, ``example.*`` not."""
    source: Literal["manual", "acme"] = "manual"
    not_before: AwareDatetime | None = None
    not_after: AwareDatetime | None = None
    key_ref: KeyRef | None = None
    """Reference to the sealed private key; ``None`` until one is stored."""
    fingerprint: Fingerprint | None = None
    """SHA-256 of the leaf certificate's DER."""
    chain_pem: CertificatePem | None = None
    """The certificate and its chain (PEM, leaf first): with ``key_ref`` the node installs
    it. ``None`` for metadata-only entries whose files are placed by hand."""

    @field_validator("names")
    @classmethod
    def _names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if name.endswith(".*"):
                raise ValueError(f"{name}: a certificate cannot cover a trailing wildcard")
        if len(set(value)) != len(value):
            raise ValueError("must not repeat a name")
        return value

    @field_validator("not_after")
    @classmethod
    def _after_before(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        start = info.data.get("not_before")
        if value is not None and start is not None and value <= start:
            raise ValueError("must be later than not_before")
        return value


class AccessRule(Part):
    action: Literal["allow", "deny"]
    source: AccessSource


class AccessList(Entity):
    """Ordered allow/deny rules; the first match decides, else ``default``."""

    COLLECTION = "access_lists"

    name: Name
    description: Text = ""
    rules: tuple[AccessRule, ...] = Field(default=(), max_length=1000)
    default: Literal["allow", "deny"] = "deny"
