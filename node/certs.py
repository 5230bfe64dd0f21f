"""Certificate files this node installs for nginx, and where they live.

The fallback certificate (``certs/_fallback.crt``/``.key`` in the state directory)
answers TLS handshakes for names no certificate covers (render/'s shared TLS setup needs
it): a self-signed EC certificate, generated once per node. Its key protects nothing (no
client trusts it), so it is the one private key written to disk in clear.

Every other key is sealed in the workspace document and written out only into the
*runtime* certificates directory (:func:`runtime_certs_dir`), preferably on a tmpfs
(``/run/nxmesh/<node>-<hash>/certs``), so that secrets do not sit on disk in clear; the
daemon installs them again from the documents at every start and removes the directory
when it stops (unless nginx is external and keeps running).
"""

from __future__ import annotations

import datetime
import hashlib
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from render.tls import FALLBACK_CERT

__all__ = ["RUNTIME_ENV", "ensure_fallback", "is_tmpfs", "runtime_certs_dir"]

RUNTIME_ENV = "NXMESH_RUNTIME_DIR"
"""Overrides the base of the runtime directory (default: the first tmpfs of /run,
$XDG_RUNTIME_DIR, /dev/shm; else the state directory)."""


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


def is_tmpfs(path: Path) -> bool:
    """Whether ``path`` (or its nearest existing parent) is on a memory file system."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return False
    target = path.resolve()
    best, fstype = "", ""
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        inside = target == Path(point) or Path(point) in target.parents
        if inside and len(point) > len(best):
            best, fstype = point, parts[2]
    return fstype in ("tmpfs", "ramfs")


def runtime_certs_dir(state_root: Path, node_name: str) -> Path:
    """Where this node installs certificates and keys for nginx.

    ``$NXMESH_RUNTIME_DIR/<node>-<hash>/certs`` when set; else the first writable tmpfs
    among ``/run/nxmesh``, ``$XDG_RUNTIME_DIR/nxmesh`` and ``/dev/shm/nxmesh``; else the
    state directory's ``certs/`` (on disk). ``<hash>`` is of the state directory's path,
    so several nodes on one machine never share a directory and a restart finds its own.
    """
    tag = f"{node_name}-{hashlib.blake2b(str(state_root).encode(), digest_size=4).hexdigest()}"
    override = os.environ.get(RUNTIME_ENV)
    if override:
        return Path(override) / tag / "certs"
    candidates = [Path("/run/nxmesh")]
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        candidates.append(Path(xdg) / "nxmesh")
    candidates.append(Path("/dev/shm/nxmesh"))
    for base in candidates:
        if is_tmpfs(base.parent) and os.access(base.parent, os.W_OK | os.X_OK):
            return base / tag / "certs"
    return state_root / "certs"
