"""Manual certificates: an uploaded key pair becomes a certificate entity and a sealed key.

The chain must parse, the key must be its leaf's, and the names come from the leaf's
subjectAltName. The key itself never goes into the entity: it is sealed in the workspace
vault under a fresh ``key_ref`` (a new reference per upload, so a replaced pair never
shares a reference with its predecessor and every node re-installs it).
"""

from __future__ import annotations

import secrets
from typing import Any

from crdt.schema import Certificate, FieldError, SchemaError, parse, to_crdt
from node.acme.keys import KeyPairError, check_pair

__all__ = ["UploadError", "pair_entity"]


class UploadError(ValueError):
    """The pair is unusable; ``errors`` name the fields."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['reason']}" for e in errors))
        self.errors = errors


def pair_entity(
    cert_id: str,
    name: str,
    certificate: str,
    key: str,
    previous: Certificate | None = None,
) -> tuple[dict[str, Any], str, bytes]:
    """(the certificate entity as plain fields, its new key reference, the key bytes)."""
    key_bytes = key.encode()
    try:
        info = check_pair(certificate, key_bytes)
    except KeyPairError as exc:
        field = "key" if "key" in str(exc) else "certificate"
        raise UploadError([FieldError(field=field, reason=str(exc))]) from None
    key_ref = f"cert-{cert_id}-{secrets.token_hex(4)}"
    data: dict[str, Any] = {
        "id": cert_id,
        "name": name,
        "names": list(info.names),
        "source": "manual",
        "not_before": info.not_before.isoformat(),
        "not_after": info.not_after.isoformat(),
        "key_ref": key_ref,
        "fingerprint": info.fingerprint,
        "chain_pem": info.chain_pem,
    }
    try:
        entity = parse(Certificate, data)
    except SchemaError as exc:
        errors = [
            FieldError(field="certificate", reason=f"{e['field']}: {e['reason']}")
            if e["field"] not in ("name", "id")
            else e
            for e in exc.errors
        ]
        raise UploadError(errors) from None
    out = to_crdt(entity)
    if previous is not None:  # keep what the entity held besides the pair
        out = {**to_crdt(previous), **out}
    return out, key_ref, key_bytes
