"""What a node publishes about itself in its membership metadata (at most 512 bytes).

Liveness and status never go into the CRDT documents - they churn - so every node
gossips them here: its version, nginx state, apply state (``ok``, ``quarantined N``,
``failed``), the revision it serves, and a digest of the desired state it applied, which
is equal on every node that applied the same documents (the rendered revision is not: it
includes each node's own addresses). A node that takes part in ACME also lists short
hashes of the HTTP-01 challenge tokens it serves (``acme``; None from older versions,
which therefore never order certificates). Per workspace it serves, it publishes a digest
of that workspace's desired state as applied (``workspaces``: 4-byte tag of the
workspace id -> 4-byte digest; as many as fit, ``workspaces_complete`` says whether all
did), so that a viewer can say which nodes serve which workspace's latest edit. Tags, not
ids: 26-character ids would leave room for a dozen, and a viewer names only the
workspaces it knows of.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgpack

from mesh import META_MAX

__all__ = ["NodeMeta", "workspace_tag"]

_VERSION = 1
_MAX_REASON = 120
_TAG = 4
_DIGEST = 4


def workspace_tag(workspace: str) -> bytes:
    """The short tag a workspace id travels as in node metadata."""
    return hashlib.blake2b(workspace.encode(), digest_size=_TAG).digest()


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
    workspaces: Mapping[bytes, bytes] = field(default_factory=dict)
    """:func:`workspace_tag` -> digest (4 bytes) of that workspace's applied state."""
    workspaces_complete: bool = True
    """False: more workspaces are served than fit in the metadata."""

    @staticmethod
    def digests(applied: Mapping[str, str]) -> dict[bytes, bytes]:
        """``workspaces`` from workspace id -> hex digest (at least 8 hex digits)."""
        return {workspace_tag(ws): bytes.fromhex(d[: 2 * _DIGEST]) for ws, d in applied.items()}

    def pack(self) -> bytes:
        """msgpack, shortened to fit :data:`mesh.META_MAX`: labels go first (the mesh
        document holds them too), then the reason, then the workspace digests that do
        not fit (``workspaces_complete`` turns false)."""
        entries = sorted(self.workspaces.items())
        reason = self.reason[:_MAX_REASON]
        for labels, why in ((self.labels, reason), ({}, reason), ({}, "")):
            data = self._packed(labels, why, entries, complete=True)
            if len(data) <= META_MAX:
                return data
        bare = len(self._packed({}, "", [], complete=False))
        # The blob's msgpack header grows by at most 2 bytes past 255 bytes.
        keep = max(0, META_MAX - bare - 2) // (_TAG + _DIGEST)
        data = self._packed({}, "", entries[:keep], complete=False)
        if len(data) <= META_MAX:
            return data
        raise ValueError("node metadata does not fit even without labels")

    def _packed(
        self,
        labels: dict[str, str],
        reason: str,
        entries: Iterable[tuple[bytes, bytes]],
        complete: bool,
    ) -> bytes:
        acme = None if self.acme is None else list(self.acme)
        return msgpack.packb(
            [
                _VERSION, self.name, self.version, self.nginx, self.apply,
                self.quarantined, reason, self.revision, self.state, labels, acme,
                b"".join(tag + digest for tag, digest in entries), complete,
            ],
            use_bin_type=True,
        )  # fmt: skip

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
        workspaces: dict[bytes, bytes] = {}
        complete = True
        if len(f) > 12 and isinstance(f[11], bytes) and isinstance(f[12], bool):
            step = _TAG + _DIGEST
            raw = f[11][: len(f[11]) - len(f[11]) % step]
            workspaces = {
                raw[i : i + _TAG]: raw[i + _TAG : i + step] for i in range(0, len(raw), step)
            }
            complete = f[12]
        return cls(
            f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], clean, acme, workspaces, complete
        )

    def applied(self, workspace: str) -> str | None:
        """The hex digest this node published for ``workspace``; None: not published."""
        digest = self.workspaces.get(workspace_tag(workspace))
        return None if digest is None else digest.hex()

    def to_json(self, known: Iterable[str] = ()) -> dict[str, Any]:
        """JSON for the API; ``known``: workspace ids to name in ``workspaces`` (others
        the viewer cannot name are counted in ``workspaces_unknown``)."""
        names = {workspace_tag(ws): ws for ws in known}
        named = {names[t]: d.hex() for t, d in self.workspaces.items() if t in names}
        return {
            "version": self.version,
            "nginx": self.nginx,
            "apply": self.apply,
            "quarantined": self.quarantined,
            "reason": self.reason,
            "revision": self.revision,
            "state": self.state,
            "workspaces": dict(sorted(named.items())),
            "workspaces_unknown": len(self.workspaces) - len(named),
            "workspaces_complete": self.workspaces_complete,
            **({} if self.acme is None else {"acme_challenges": len(self.acme)}),
        }
