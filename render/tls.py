"""Which installed certificate answers for which server name.

TLS is shared, not per server block: one ``map $ssl_server_name $nxm_cert`` names a
certificate id per host name (wildcards included), and one TLS server per https address
loads ``<certificates_dir>/$nxm_cert.crt`` at handshake. Unknown names (and clients
without SNI) get the ``_fallback`` certificate, which the node must install.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from crdt.schema import Certificate, VirtualHost, WorkspaceState

__all__ = [
    "CERT_VAR",
    "FALLBACK_CERT",
    "ambiguous_certificates",
    "certificates_for",
    "covers",
]

CERT_VAR = "nxm_cert"
"""The variable holding the certificate id chosen for a handshake."""
FALLBACK_CERT = "_fallback"
"""Certificate file stem for unknown names; ids never start with '_', so no collision."""
_EPOCH = datetime.min.replace(tzinfo=UTC)


def ambiguous_certificates(workspaces: Mapping[str, WorkspaceState]) -> dict[str, list[str]]:
    """Certificate ids defined in more than one workspace, with those workspaces.

    Installed files are named by id alone, so such an id cannot say whose certificate
    the file holds; vhosts referring to it are not given TLS.
    """
    where: dict[str, list[str]] = {}
    for ws in sorted(workspaces):
        for cert_id in workspaces[ws].certificates:
            where.setdefault(cert_id, []).append(ws)
    return {cert_id: wss for cert_id, wss in where.items() if len(wss) > 1}


def covers(certificate_name: str, name: str) -> bool:
    """X.509 matching: ``*.example.com`` covers exactly one more label."""
    if certificate_name.startswith("*."):
        head, _, rest = name.partition(".")
        return bool(head) and rest == certificate_name[2:]
    return certificate_name == name


def certificates_for(
    vhost: VirtualHost,
    state: WorkspaceState,
    installed: frozenset[str],
    ambiguous: Mapping[str, list[str]],
) -> tuple[dict[str, str], list[str]]:
    """(server name -> certificate id, notes) for a TLS vhost; names left out have none."""
    notes: list[str] = []
    if vhost.tls.mode == "manual":
        cert_id = vhost.tls.certificate
        if cert_id is None:  # the schema requires one; kept for a model built by hand
            return {}, ["TLS is manual but names no certificate"]
        if cert_id in ambiguous:
            wss = ", ".join(ambiguous[cert_id])
            return {}, [f"certificate id {cert_id!r} exists in several workspaces ({wss})"]
        if cert_id not in installed:
            return {}, [f"certificate {cert_id!r} is not installed on this node"]
        return dict.fromkeys(vhost.server_names, cert_id), notes
    candidates = sorted(
        (
            c
            for c in state.certificates.values()
            if c.source == "acme" and c.id in installed and c.id not in ambiguous
        ),
        key=_freshness,
        reverse=True,
    )
    chosen: dict[str, str] = {}
    for name in vhost.server_names:
        best = next((c for c in candidates if any(covers(n, name) for n in c.names)), None)
        if best is not None:
            chosen[name] = best.id
    missing = [n for n in vhost.server_names if n not in chosen]
    if missing:
        notes.append("no ACME certificate installed for " + ", ".join(missing))
    return chosen, notes


def _freshness(cert: Certificate) -> tuple[datetime, str]:
    return (cert.not_after or _EPOCH, cert.id)
