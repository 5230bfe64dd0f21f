"""Certificate files this node installs for nginx.

The fallback certificate (``certs/_fallback.crt``/``.key``) answers TLS handshakes for
names no certificate covers (render/'s shared TLS setup needs it): a self-signed EC
certificate, generated once per node. Its key protects nothing (no client trusts it),
so it is the one private key written to disk in clear.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from render.tls import FALLBACK_CERT

__all__ = ["ensure_fallback"]


def ensure_fallback(directory: Path, node_name: str) -> bool:
    """Create the fallback certificate unless present; True when it was created."""
    crt = directory / f"{FALLBACK_CERT}.crt"
    key_path = directory / f"{FALLBACK_CERT}.key"
    if crt.exists() and key_path.exists():
        return False
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"nxmesh fallback {node_name}")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write(key_path, key_pem, 0o600)
    _write(crt, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return True


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
