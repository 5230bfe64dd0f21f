"""Where a workspace gets its certificates from, and the node-local tuning.

Issuer settings come from the documents: the workspace's ``acme_directory``,
``acme_contact`` and ``acme_dns_provider`` when set, else the mesh settings', else Let's
Encrypt over HTTP-01. Preset names (``letsencrypt``, ``letsencrypt-staging``) resolve to
their directory URLs.

Tuning is per node, from the environment (the same on every node in practice):

=============================  =========  ===============================================
``NXMESH_ACME_CA_BUNDLE``      (system)   CA file to trust for the ACME server's HTTPS
``NXMESH_ACME_RETRY_BASE``     60         first backoff after a failure (doubles, 6 h cap)
``NXMESH_ACME_SETTLE``         1.0        seconds between taking a lease and using it
``NXMESH_ACME_LEASE_TTL``      60         lease lifetime (renewed every third of it)
``NXMESH_ACME_CHALLENGE_WAIT`` 15         longest wait for serving nodes to report a token
``NXMESH_ACME_ORDER_PAUSE``    0          tests only: pause after placing a new order
=============================  =========  ===============================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from crdt.schema import MeshSettings, Workspace
from crdt.schema.values import ACME_PRESETS

__all__ = ["DEFAULT_DIRECTORY", "Issuer", "Tuning", "issuer_for"]

DEFAULT_DIRECTORY = "letsencrypt"


@dataclass(frozen=True)
class Issuer:
    directory: str
    """The directory URL (presets resolved)."""
    contact: str | None
    dns_provider: str | None
    """``NAME[:ARG]`` for DNS-01; None: HTTP-01."""

    @property
    def challenge_type(self) -> str:
        return "dns-01" if self.dns_provider else "http-01"


def issuer_for(settings: MeshSettings, workspace: Workspace | None) -> Issuer:
    directory = (workspace.acme_directory if workspace else None) or settings.acme_directory
    contact = (workspace.acme_contact if workspace else None) or settings.acme_contact
    provider = (workspace.acme_dns_provider if workspace else None) or settings.acme_dns_provider
    directory = directory or DEFAULT_DIRECTORY
    return Issuer(ACME_PRESETS.get(directory, directory), contact, provider)


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        return default
    return value if value >= 0 else default


@dataclass(frozen=True)
class Tuning:
    retry_base: float = 60.0
    retry_cap: float = 6 * 3600.0
    settle: float = 1.0
    lease_ttl: float = 60.0
    challenge_wait: float = 15.0
    order_timeout: float = 120.0
    """Longest a single order may take (validation and issuance included)."""
    order_pause: float = 0.0
    ca_bundle: str | None = None

    @classmethod
    def from_env(cls) -> Tuning:
        return cls(
            retry_base=max(_float("NXMESH_ACME_RETRY_BASE", 60.0), 0.1),
            settle=_float("NXMESH_ACME_SETTLE", 1.0),
            lease_ttl=max(_float("NXMESH_ACME_LEASE_TTL", 60.0), 3.0),
            challenge_wait=_float("NXMESH_ACME_CHALLENGE_WAIT", 15.0),
            order_pause=_float("NXMESH_ACME_ORDER_PAUSE", 0.0),
            ca_bundle=os.environ.get("NXMESH_ACME_CA_BUNDLE") or None,
        )
