"""What a node publishes about itself in its membership metadata (at most 512 bytes).

Liveness and status never go into the CRDT documents - they churn - so every node
gossips them here: its version, nginx state, apply state (``ok``, ``quarantined N``,
``failed``), the revision it serves, and a digest of the desired state it applied, which
is equal on every node that applied the same documents (the rendered revision is not: it
includes each node's own addresses). A node that takes part in ACME also lists short
hashes of the HTTP-01 challenge tokens it serves (``acme``; None from older versions,
which therefore never order certificates).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack

from mesh import META_MAX

__all__ = ["NodeMeta"]

_VERSION = 1
_MAX_REASON = 120


@dataclass(frozen=True)
class NodeMeta:
    """One node's published status."""

    name: str
    version: str
    nginx: str = "unknown"
    """``up``, ``down``, ``starting``, ``render-only``, ``external``..."""
    apply: str = "pending"
    """``pending``, ``ok``, ``quarantined``, ``failed``."""
    quarantined: int = 0
    reason: str = ""
    revision: str = ""
    """The applied tree's revision (first 12 hex digits)."""
    state: str = ""
    """Digest of the desired state that tree was rendered from (12 hex digits)."""
    labels: dict[str, str] = field(default_factory=dict)
    acme: tuple[bytes, ...] | None = None
    """Hashes of the HTTP-01 tokens this node serves (node.acme.challenges.token_hash),
    newest first; None: the node does not take part in ACME."""

    def pack(self) -> bytes:
        """msgpack, shortened to fit :data:`mesh.META_MAX` (labels, then the reason go)."""
        reason = self.reason[:_MAX_REASON]
        tail: list[Any] = [] if self.acme is None else [list(self.acme)]
        for labels in (self.labels, {}):
            data = msgpack.packb(
                [
                    _VERSION, self.name, self.version, self.nginx, self.apply,
                    self.quarantined, reason, self.revision, self.state, labels, *tail,
                ],
                use_bin_type=True,
            )  # fmt: skip
            if len(data) <= META_MAX:
                return data
            reason = ""
        raise ValueError("node metadata does not fit even without labels")

    @classmethod
    def unpack(cls, data: bytes) -> NodeMeta | None:
        """None for metadata this version cannot read (a newer or broken peer)."""
        try:
            f: Any = msgpack.unpackb(data, raw=False, strict_map_key=True, max_ext_len=0)
        except (ValueError, TypeError, msgpack.UnpackException):
            return None
        if not isinstance(f, list) or len(f) < 10 or f[0] != _VERSION:
            return None
        strings = [f[1], f[2], f[3], f[4], f[6], f[7], f[8]]
        if not all(isinstance(x, str) for x in strings) or not isinstance(f[5], int):
            return None
        labels = f[9] if isinstance(f[9], dict) else {}
        clean = {str(k): str(v) for k, v in labels.items()}
        acme: tuple[bytes, ...] | None = None
        if len(f) > 10 and isinstance(f[10], list):
            acme = tuple(bytes(h) for h in f[10][:64] if isinstance(h, bytes))
        return cls(f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], clean, acme)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "nginx": self.nginx,
            "apply": self.apply,
            "quarantined": self.quarantined,
            "reason": self.reason,
            "revision": self.revision,
            "state": self.state,
            **({} if self.acme is None else {"acme_challenges": len(self.acme)}),
        }
