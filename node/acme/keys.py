"""Keys, CSRs and certificates as PEM: generation, parsing and the checks the installer
and the upload path share. Pure functions over ``cryptography``; no I/O.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

__all__ = [
    "CertificateInfo",
    "KeyPairError",
    "check_pair",
    "generate_key",
    "make_csr",
    "parse_chain",
]

MAX_CHAIN = 16
"""Certificates accepted in one chain (leaf + intermediates)."""


class KeyPairError(ValueError):
    """A certificate or key is unusable; the message says why in one line."""


@dataclass(frozen=True)
class CertificateInfo:
    """What the document records about a certificate chain (leaf first)."""

    names: tuple[str, ...]
    """DNS names of the leaf's subjectAltName (lower case), else its common name."""
    not_before: datetime
    not_after: datetime
    fingerprint: str
    """SHA-256 of the leaf's DER, 64 hex digits."""
    chain_pem: str
    """The chain re-encoded as PEM (leaf first), nothing else."""
    issuer: str

    @property
    def lifetime(self) -> float:
        return (self.not_after - self.not_before).total_seconds()


def generate_key() -> bytes:
    """A fresh EC P-256 private key, PKCS#8 PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_key(key_pem: bytes) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    """An unencrypted EC or RSA private key; :class:`KeyPairError` otherwise."""
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise KeyPairError("the private key is encrypted; upload it without a passphrase") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyPairError(f"not a PEM private key ({_first_line(exc)})") from None
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        raise KeyPairError("Ed25519/Ed448 keys are not supported by nginx clients; use EC or RSA")
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise KeyPairError(f"unsupported key type {type(key).__name__}; use EC or RSA")
    return key


def make_csr(key_pem: bytes, names: tuple[str, ...]) -> bytes:
    """A PEM CSR for ``names`` (subjectAltName; the first also as common name)."""
    key = load_key(key_pem)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject if len(names[0]) <= 64 else x509.Name([]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def parse_chain(chain_pem: str | bytes) -> CertificateInfo:
    """Read a PEM chain (leaf first); :class:`KeyPairError` when it is not one."""
    data = chain_pem.encode() if isinstance(chain_pem, str) else chain_pem
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise KeyPairError(f"not a PEM certificate chain ({_first_line(exc)})") from None
    if not certs:
        raise KeyPairError("no certificate in the PEM text")
    if len(certs) > MAX_CHAIN:
        raise KeyPairError(f"a chain of {len(certs)} certificates; at most {MAX_CHAIN}")
    leaf = certs[0]
    names = _dns_names(leaf)
    if not names:
        raise KeyPairError("the certificate names no DNS name (subjectAltName or common name)")
    pem = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)
    return CertificateInfo(
        names=names,
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        fingerprint=hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest(),
        chain_pem=pem,
        issuer=leaf.issuer.rfc4514_string()[:200],
    )


def check_pair(chain_pem: str | bytes, key_pem: bytes) -> CertificateInfo:
    """The chain's info when ``key_pem`` is the private key of its leaf."""
    info = parse_chain(chain_pem)
    key = load_key(key_pem)
    leaf = x509.load_pem_x509_certificates(info.chain_pem.encode())[0]
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    mine = key.public_key().public_bytes(serialization.Encoding.DER, public)
    theirs = leaf.public_key().public_bytes(serialization.Encoding.DER, public)
    if mine != theirs:
        raise KeyPairError("the private key does not belong to the certificate")
    return info


def _dns_names(cert: x509.Certificate) -> tuple[str, ...]:
    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = [n.lower() for n in san.value.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        names = [str(a.value).lower() for a in cn]
    return tuple(dict.fromkeys(n.rstrip(".") for n in names if n))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:160] if text else type(exc).__name__
