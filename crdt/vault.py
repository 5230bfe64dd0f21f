"""A workspace's secrets inside its document: wrapped data keys and sealed blobs.

Layout (two top-level Maps of the workspace document, see docs/state.md):

``key_wraps``
    ``"<slot>/<wrapper key hex>"`` -> msgpack of a :class:`crdt.secrets.WrappedKey`.
``sealed``
    secret id (a certificate's ``key_ref``) -> sealed blob (:meth:`DataKey.seal`, with the
    secret id as associated data, so a blob moved to another id does not open).

The workspace document travels only to the nodes that serve the workspace (topic
broadcasts and partial anti-entropy), so a node that does not serve it never receives
these maps - and could not open them anyway without a wrap for its own key.

:meth:`WorkspaceVault.maintain` is what a serving node runs whenever members or
assignments change: it rotates the data key when a non-holder holds the current one (a
revoked or unassigned node) and re-seals every blob under the new key, or wraps the
current key for serving nodes that lack it. A revoked node has no wrap of any key made
after its revocation, so it learns nothing sealed afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import msgpack
from pycrdt import Doc, Map

from crdt.secrets import Keyring, SecretError, WrappedKey
from crdt.store import PersistedDoc
from mesh import Identity

__all__ = ["KEY_WRAPS", "SEALED", "WorkspaceVault"]

KEY_WRAPS = "key_wraps"
SEALED = "sealed"


def _wrap_key(wrap: WrappedKey) -> str:
    return f"{wrap.slot}/{wrap.wrapped_by.hex()}"


class WorkspaceVault:
    """Seal, open and keep keyed the secrets of one workspace document."""

    def __init__(
        self,
        persisted: PersistedDoc,
        workspace_id: str,
        identity: Identity,
        *,
        may_hold: Callable[[bytes], bool],
    ) -> None:
        """``may_hold(node key)``: a mesh member serving this workspace now
        (:meth:`crdt.membership.MeshState.serves`)."""
        self.persisted = persisted
        self.workspace_id = workspace_id
        self.identity = identity
        self.keyring = Keyring(workspace_id, is_member=may_hold)
        self._seen_generation = -1

    def _fresh(self) -> Keyring:
        if self.persisted.generation != self._seen_generation:
            self._seen_generation = self.persisted.generation
            wraps: list[dict[str, Any]] = []
            for _, value in _items(self.persisted.doc, KEY_WRAPS):
                unpacked = _unpack(value)
                if isinstance(unpacked, dict):
                    wraps.append(unpacked)
            self.keyring.update(wraps)
        return self.keyring

    # ------------------------------------------------------------------ secrets

    def put(self, secret_id: str, plaintext: bytes) -> bytes | None:
        """Seal ``plaintext`` under the current key and store it (durably); returns the
        update. :class:`SecretError` when the workspace needs a rotation first."""
        blob = self._fresh().seal(plaintext, secret_id, self.identity)

        def write(doc: Doc[Any]) -> None:
            doc.get(SEALED, type=Map)[secret_id] = blob

        return self.persisted.commit(write)

    def get(self, secret_id: str) -> bytes:
        """Open a stored secret; :class:`SecretError` if absent or not openable here."""
        blob = _items_dict(self.persisted.doc, SEALED).get(secret_id)
        if not isinstance(blob, bytes | bytearray):
            raise SecretError(f"no sealed secret {secret_id!r} in workspace {self.workspace_id!r}")
        return self._fresh().open(bytes(blob), secret_id, self.identity)

    def secret_ids(self) -> list[str]:
        return sorted(_items_dict(self.persisted.doc, SEALED))

    def delete(self, secret_id: str) -> bytes | None:
        def write(doc: Doc[Any]) -> None:
            sealed = doc.get(SEALED, type=Map)
            if secret_id in sealed:
                del sealed[secret_id]

        return self.persisted.commit(write)

    # ------------------------------------------------------------------ keys

    def maintain(self, holders: Iterable[bytes], now: int) -> bytes | None:
        """Bring the keys in line with ``holders`` (the members serving the workspace).

        Rotates when there is no key yet or a non-holder holds the current one (then
        re-seals every blob this node can open under the new key); otherwise wraps the
        current key for holders that lack it, when this node holds it. Returns the
        update, or None when nothing needed doing or this node cannot help."""
        keyring = self._fresh()
        holders = sorted({bytes(h) for h in holders if keyring.is_member(bytes(h))})
        if not holders or self.identity.public_key not in holders:
            return None
        if keyring.needs_rotation() is not None:
            wraps = keyring.rotate(self.identity, holders, now)
            return self._store(wraps, reseal=True)
        wraps = []
        for node in sorted(keyring.lacking(holders)):
            try:
                wraps.extend(keyring.rewrap_for(self.identity, node, now))
            except SecretError:
                return None  # this node lacks the newest key: another holder wraps
        return self._store(wraps, reseal=False) if wraps else None

    def _store(self, wraps: list[WrappedKey], *, reseal: bool) -> bytes | None:
        entries = [(_wrap_key(w), msgpack.packb(w.to_dict(), use_bin_type=True)) for w in wraps]
        resealed: dict[str, bytes] = {}
        if reseal:
            for secret_id, blob in _items_dict(self.persisted.doc, SEALED).items():
                if not isinstance(blob, bytes | bytearray):
                    continue
                try:
                    resealed[secret_id] = self.keyring.reseal(bytes(blob), secret_id, self.identity)
                except SecretError:
                    continue  # not openable here (a generation this node never held)

        def write(doc: Doc[Any]) -> None:
            key_wraps = doc.get(KEY_WRAPS, type=Map)
            for key, data in entries:
                key_wraps[key] = data
            sealed = doc.get(SEALED, type=Map)
            for secret_id, blob in resealed.items():
                sealed[secret_id] = blob

        return self.persisted.commit(write)


def _items(doc: Doc[Any], name: str) -> list[tuple[str, Any]]:
    return list(doc.get(name, type=Map).items())


def _items_dict(doc: Doc[Any], name: str) -> dict[str, Any]:
    return dict(_items(doc, name))


def _unpack(value: object) -> Any:
    if not isinstance(value, bytes | bytearray):
        return None
    try:
        return msgpack.unpackb(bytes(value), raw=False, strict_map_key=True, max_ext_len=0)
    except (ValueError, TypeError, msgpack.UnpackException):
        return None
