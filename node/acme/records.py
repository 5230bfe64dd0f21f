"""What the ACME coordination writes into the documents, and how it is read back.

Workspace document (top-level Maps next to the schema's collections; every value is one
JSON string, replaced whole, so a conflict resolves to one record somebody wrote):

``acme_leases``      subject -> :class:`Lease`: who orders that subject's certificate, until
                     when, and how far the order got (order URL, key reference) so that a
                     successor continues the same order.
``acme_challenges``  HTTP-01 token -> :class:`ChallengeRecord`: every serving node serves it.
``acme_status``      subject -> :class:`SubjectStatus`: last outcome, error, failures,
                     when to retry (the backoff every node honours).
``acme_accounts``    directory key -> :class:`Account`: the account URL and the reference of
                     its key, sealed in the workspace vault.
``acme_renew``       subject -> time: an operator asked for a renewal at that time.

Mesh document:

``acme_orders``      fresh id -> :class:`OrderMark`: orders placed in the last hour, for the
                     mesh-wide cap on the order rate.

Readers never raise: a value that does not parse is ignored (and rewritten by whoever
owns it next).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

from pycrdt import Doc, Map

__all__ = [
    "ACCOUNTS",
    "CHALLENGES",
    "LEASES",
    "ORDERS",
    "RENEW",
    "STATUS",
    "Account",
    "ChallengeRecord",
    "Lease",
    "OrderMark",
    "SubjectStatus",
    "account_key",
    "read_map",
    "valid_token",
]

LEASES = "acme_leases"
CHALLENGES = "acme_challenges"
STATUS = "acme_status"
ACCOUNTS = "acme_accounts"
RENEW = "acme_renew"
ORDERS = "acme_orders"

R = TypeVar("R", bound="_Record")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
_KEY_AUTH = re.compile(r"^[A-Za-z0-9_-]{16,128}\.[A-Za-z0-9_-]{16,128}$")


def valid_token(token: str, key_authorization: str | None = None) -> bool:
    """An HTTP-01 token (base64url; safe as a file name) and, if given, its key
    authorization (``token.thumbprint``)."""
    if not _TOKEN.match(token):
        return False
    return key_authorization is None or (
        bool(_KEY_AUTH.match(key_authorization)) and key_authorization.split(".", 1)[0] == token
    )


def account_key(directory: str) -> str:
    """The ``acme_accounts`` key of a directory URL."""
    return hashlib.blake2b(directory.encode(), digest_size=10).hexdigest()


class _Record:
    """JSON of the dataclass fields; unknown keys are ignored, wrong types refused."""

    def dumps(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))  # type: ignore[call-overload]

    @classmethod
    def loads(cls: type[R], value: object) -> R | None:
        if not isinstance(value, str):
            return None
        try:
            data = json.loads(value)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        kwargs: dict[str, Any] = {}
        for f in fields(cls):  # type: ignore[arg-type]
            if f.name not in data:
                continue
            item = data[f.name]
            kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
            if not _fits(item, kind):
                return None
            kwargs[f.name] = tuple(item) if isinstance(item, list) else item
        try:
            return cls(**kwargs)
        except TypeError:
            return None


def _fits(item: object, kind: str) -> bool:
    if "None" in kind and item is None:
        return True
    if kind.startswith("str"):
        return isinstance(item, str)
    if kind.startswith("float"):
        return isinstance(item, int | float) and not isinstance(item, bool)
    if kind.startswith("int"):
        return isinstance(item, int) and not isinstance(item, bool)
    if kind.startswith("bool"):
        return isinstance(item, bool)
    if kind.startswith("tuple"):
        return isinstance(item, list) and all(isinstance(x, str) for x in item)
    return False


@dataclass(frozen=True)
class Lease(_Record):
    """A node's claim on ordering one subject's certificate."""

    holder: str
    """The holder's node key (hex)."""
    node: str
    """The holder's name (for people)."""
    lease_id: str
    """Fresh per take-over: a holder still working checks it is this one."""
    expires: float
    taken: float
    order_url: str = ""
    """Set as soon as the order exists: a successor continues it instead of ordering."""
    cert_id: str = ""
    key_ref: str = ""
    """The certificate's private key, sealed before the order is finalized."""
    account: str = ""
    """``acme_accounts`` key of the account the order belongs to."""
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChallengeRecord(_Record):
    key_authorization: str
    subject: str
    expires: float


@dataclass(frozen=True)
class SubjectStatus(_Record):
    """The last outcome for one subject; written by its orderer."""

    state: str
    """``ordering``, ``valid``, ``failed`` or ``rate-limited``."""
    names: tuple[str, ...] = ()
    error: str = ""
    failures: int = 0
    retry_at: float = 0.0
    last_attempt: float = 0.0
    last_success: float = 0.0
    node: str = ""
    certificate: str = ""
    ari_certificate: str = ""
    """The certificate the ARI fields are about."""
    ari_renew_at: float = 0.0
    """The ACME server's suggested renewal time (ARI), 0 when it offers none."""
    ari_next_check: float = 0.0


@dataclass(frozen=True)
class Account(_Record):
    directory: str
    url: str
    key_ref: str
    contact: str = ""
    created: float = 0.0


@dataclass(frozen=True)
class OrderMark(_Record):
    at: float
    workspace: str = ""
    node: str = ""
    names: tuple[str, ...] = field(default_factory=tuple)


def read_map(doc: Doc[Any], name: str, kind: Callable[[object], R | None]) -> dict[str, R]:
    """Every record of a top-level Map that parses."""
    root = doc.get(name, type=Map)
    out: dict[str, R] = {}
    for key, value in list(root.items()):
        record = kind(value)
        if record is not None:
            out[str(key)] = record
    return out


def write(doc: Doc[Any], name: str, key: str, record: _Record | None) -> None:
    """Set (or delete, with ``None``) one record; call inside a commit."""
    root = doc.get(name, type=Map)
    if record is None:
        if key in root:
            del root[key]
        return
    value = record.dumps()
    if root.get(key) != value:
        root[key] = value


def delete_many(doc: Doc[Any], name: str, keys: Iterable[str]) -> None:
    root = doc.get(name, type=Map)
    for key in keys:
        if key in root:
            del root[key]
