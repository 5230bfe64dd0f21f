"""Request and response models of the node endpoints (entities use crdt.schema's models).

Requests are validated with these models after :func:`node.api.body.read_object`;
responses are documented with them (the OpenAPI document) and built as plain dicts.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from crdt.schema import Author
from crdt.schema.values import parse_duration

__all__ = [
    "MAX_LABELS",
    "AcmeSubject",
    "AcmeSubjectList",
    "AuditItem",
    "AuditList",
    "CertificateStatus",
    "ConfigFile",
    "FieldError",
    "InvalidEntity",
    "Invite",
    "InviteRequest",
    "KeyPairRequest",
    "LabelsRequest",
    "Member",
    "MemberList",
    "NodeConfig",
    "NodeReport",
    "Problem",
    "RenewalRequested",
    "Status",
    "WorkspacesRequest",
]

MAX_LABELS = 16
_LABEL_KEY = re.compile(r"^[a-z0-9]([a-z0-9._/-]{0,61}[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9._-]{0,63}$")
_STRICT = ConfigDict(extra="forbid", frozen=True)


def _labels(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError("must be an object of label: value")  # noqa: TRY004 - pydantic reports ValueError
    if len(value) > MAX_LABELS:
        raise ValueError(f"must have at most {MAX_LABELS} labels")
    for key, item in value.items():
        if not _LABEL_KEY.match(key):
            raise ValueError(
                f"label {key!r}: names are 1-63 lowercase letters, digits, '.', '_', '/', '-'"
            )
        if not isinstance(item, str) or not _LABEL_VALUE.match(item):
            raise ValueError(f"label {key!r}: values are 0-63 letters, digits, '.', '_', '-'")
    return dict(value)


Labels = Annotated[dict[str, str], BeforeValidator(_labels)]


class LabelsRequest(BaseModel):
    """``PUT /v1/nodes/{name}/labels``: the node's labels, replacing the old ones."""

    model_config = _STRICT
    labels: Labels


MAX_ASSIGNED = 1000


class WorkspacesRequest(BaseModel):
    """``PUT /v1/nodes/{name}/workspaces``: what the node serves, replacing the old set."""

    model_config = _STRICT
    workspaces: list[Annotated[str, StringConstraints(min_length=1, max_length=256)]] = Field(
        max_length=MAX_ASSIGNED,
        description='Workspace ids or names; `["*"]` alone: every workspace; `[]`: none '
        "(the node keeps its membership only).",
    )


def _positive_duration(value: object) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError("must be greater than zero")
    return seconds


class InviteRequest(BaseModel):
    """``POST /v1/invites``: how long the token lives and how many joins it admits."""

    model_config = _STRICT
    ttl: Annotated[float, BeforeValidator(_positive_duration)] = Field(
        default=3600.0, description="Lifetime: seconds or a duration such as 1h, 30m."
    )
    uses: int = Field(default=1, ge=1, le=1000, strict=True)


class Invite(BaseModel):
    token: str
    expires_at: float
    uses: int


class Member(BaseModel):
    name: str
    key: str = Field(description="Fingerprint of the node's Ed25519 key.")
    address: str
    state: str = Field(description="alive, suspect, dead, left or revoked.")
    labels: dict[str, str]
    workspaces: list[str] = Field(
        description='The workspaces it serves: `["*"]` (every one) or their ids, sorted.'
    )
    metadata: dict[str, Any]


class MemberList(BaseModel):
    items: list[Member]


class Status(BaseModel):
    model_config = ConfigDict(extra="allow")
    node: str
    version: str
    api: dict[str, Any]


class UnitState(BaseModel):
    state: str = Field(description="degraded or skipped.")
    reason: str


class QuarantinedUnit(BaseModel):
    unit: str = Field(description="<workspace>/vhost/<id> or <workspace>/stream/<id>.")
    reason: str = Field(description="Why nginx refused it.")


class LastApply(BaseModel):
    """The applier's last pass on the node."""

    model_config = ConfigDict(extra="allow")
    state: str = Field(description="pending, ok, quarantined or failed.")
    stage: str = Field(description="Where a failure happened (render, stage, test, reload...).")
    reason: str
    nginx_message: str = Field(description="nginx's own text (nginx -t, error log).")
    revision: str | None = Field(description="The revision serving now.")
    desired_revision: str | None
    applied_at: float | None = Field(description="When the serving tree was applied.")
    updated_at: float | None
    duration_s: float = Field(description="How long the last pass took.")
    drift: list[str] = Field(description="Files last found changed by hand (then restored).")


class NodeMetrics(BaseModel):
    """A summary of the node's own Prometheus metrics."""

    model_config = ConfigDict(extra="allow")
    reloads_ok: int
    reloads_failed: int
    reloads_rolled_back: int
    apply_failures: int
    applies: int
    last_apply_duration_s: float
    revision_age_s: float | None
    nginx_up: bool
    mesh_datagrams_in: int
    mesh_datagrams_out: int
    mesh_drops: int
    local_edits: int
    remote_updates: int
    documents: int
    document_bytes: int


class NodeReport(BaseModel):
    """``GET /v1/nodes/{name}/status``: what the node says of its nginx."""

    model_config = ConfigDict(extra="allow")
    node: str
    source: str = Field(description="local (this node) or mesh (asked over the mesh).")
    apply: dict[str, Any] = Field(description="What the node publishes (its /v1/status apply).")
    last_apply: LastApply
    quarantined: list[QuarantinedUnit]
    units: dict[str, UnitState] = Field(description="Units that are not ok, with why.")
    invalid: list[str]
    metrics: NodeMetrics | dict[str, Any]
    filtered: bool = Field(
        description="Parts about workspaces the caller's node does not serve were left out."
    )


class ConfigFile(BaseModel):
    path: str = Field(description="Relative to the node's nginx conf directory.")
    size: int | None
    sha256: str
    redacted: bool = Field(
        description="A shared file whose lines about workspaces the caller's node does not "
        "serve were hidden; size and sha256 are those of what is shown."
    )


class ConfigFileContent(ConfigFile):
    truncated: bool = Field(description="Cut at 1 MiB.")
    content: str


class NodeConfig(BaseModel):
    """``GET /v1/nodes/{name}/config``: the node's applied nginx tree."""

    model_config = ConfigDict(extra="allow")
    node: str
    source: str
    revision: str | None
    applied_at: float | None
    files: list[ConfigFile] = Field(description="nginx.conf first, then by path.")
    total: int = Field(description="Files the caller may see (the list may be cut short).")
    truncated: bool
    filtered: bool
    file: ConfigFileContent | None = Field(description="The file asked for with ?path=.")


class FieldError(BaseModel):
    field: str = Field(description="Where, e.g. locations[0].upstream or query.name.")
    reason: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow")
    type: str = Field(description="urn:nxmesh:problem:<slug>")
    title: str
    status: int
    detail: str
    errors: list[FieldError] = []


class InvalidEntity(BaseModel):
    """A stored entity that does not validate (written by a peer or another version)."""

    id: str | None
    errors: list[FieldError]


MAX_PEM = 64 * 1024


class KeyPairRequest(BaseModel):
    """``POST .../certificates/key-pair`` and ``PUT .../certificates/{id}/key-pair``: a
    certificate chain and its private key, both PEM. The key is sealed in the workspace
    vault and never returned; names and validity come from the certificate."""

    model_config = _STRICT
    name: str | None = Field(
        default=None,
        description="The certificate's name (required when creating; default: unchanged).",
    )
    certificate: str = Field(
        max_length=MAX_PEM, description="PEM chain: the certificate, then intermediates."
    )
    key: str = Field(max_length=16 * 1024, description="PEM private key (EC or RSA, unencrypted).")


class AcmeSubject(BaseModel):
    """One set of names a ``tls: acme`` virtual host needs a certificate for."""

    model_config = ConfigDict(extra="allow")
    workspace: str
    subject: str = Field(description="Hash of the sorted names: the same on every node.")
    names: list[str]
    vhosts: list[str]
    state: str = Field(description="pending, ordering, valid, failed or rate-limited.")
    error: str = Field(description="The last ACME error (empty when the last order worked).")
    failures: int
    retry_at: float | None = Field(description="Backoff: no order before this Unix time.")
    orderer: str | None = Field(description="The node holding the order lease, if any.")
    certificate: str | None = Field(description="The newest certificate's id.")
    not_after: str | None
    expires_in: int | None = Field(description="Seconds until the newest certificate expires.")
    renew_at: float | None


class AcmeSubjectList(BaseModel):
    items: list[AcmeSubject]


class CertificateStatus(BaseModel):
    """A certificate's expiry and renewal, and whether this node installed it."""

    model_config = ConfigDict(extra="allow")
    id: str
    name: str
    names: list[str]
    source: str
    not_after: str | None
    expires_in: int | None
    expired: bool
    installed: bool | None = Field(description="Installed for this node's nginx (None: unknown).")
    install_error: str | None
    acme: dict[str, Any] | None = Field(description="The ACME state of its names (acme only).")


class RenewalRequested(BaseModel):
    subject: str
    requested_at: float


class AuditItem(BaseModel):
    """One edit in a document's audit log."""

    op: str = Field(description="created, updated, deleted, or an action (renewal-requested).")
    resource: str = Field(description="The collection's path segment: vhosts, upstreams...")
    id: str = Field(description="The entity's id.")
    name: str | None = Field(description="The entity's name then (a deleted one's last name).")
    fields: list[str] = Field(description="The fields the edit wrote.")
    changed_by: Author
    changed_at: str | None = Field(description="When: ISO 8601, UTC (the node's wall clock).")


class AuditList(BaseModel):
    items: list[AuditItem] = Field(description="Newest first.")
