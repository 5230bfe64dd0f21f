"""Installing certificates from the documents into the directory nginx reads.

For every certificate of a served workspace that carries its chain (``chain_pem``) and a
sealed key (``key_ref``), the installer opens the key with the workspace vault, checks
that it belongs to the certificate, and writes ``<id>.key`` then ``<id>.crt`` - each
atomically (temporary file, then rename), the key readable by nginx's workers only
(mode 0640, group of the workers, when running as root; 0600 otherwise). render/ treats
an id as installed once both files exist, so a half-installed pair is never used.

Files of certificates that left the documents are removed only once the revision nginx
serves no longer refers to them and a grace period has passed (old workers finishing a
handshake still read them). The fallback certificate and pairs placed by hand in the
state directory's ``certs/`` are copied in as they are.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from crdt.schema import Certificate
from node.acme.keys import KeyPairError, check_pair
from render.tls import FALLBACK_CERT

__all__ = ["STALE_GRACE", "Installer"]

STALE_GRACE = 30.0
"""Seconds an unreferenced certificate's files stay after nginx stopped using them."""


class Installer:
    """Certificate and key files in one directory (see the module's docstring)."""

    def __init__(
        self,
        directory: Path,
        source: Path,
        *,
        group: int | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``source``: the state directory's ``certs/`` (fallback and hand-placed pairs);
        ``group``: the nginx workers' group when running as root."""
        self.directory = directory
        self.source = source
        self.group = group
        self.clock = clock
        self.installed: dict[str, str] = {}
        """Certificate id -> fingerprint installed from the documents."""
        self.manual: set[str] = set()
        """Ids copied from ``source`` (placed by hand)."""
        self.errors: dict[str, str] = {}
        """Certificate id -> why it could not be installed (last pass)."""
        self._stale: dict[str, float] = {}

    # ------------------------------------------------------------------ directories

    def prepare(self) -> None:
        """Create the directory (and its parents up to the runtime base) with the modes
        the workers need, and copy the fallback and hand-placed pairs in."""
        if self.directory != self.source:
            self._mkdir(self.directory.parent.parent, 0o711, group=False)
            self._mkdir(self.directory.parent, 0o710 if self.group is not None else 0o700)
            self._mkdir(self.directory, 0o750 if self.group is not None else 0o700)
        else:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.copy_manual()

    def _mkdir(self, path: Path, mode: int, *, group: bool = True) -> None:
        path.mkdir(mode=mode, parents=True, exist_ok=True)
        if self.group is not None and group:
            os.chown(path, 0, self.group)
        try:
            os.chmod(path, mode)
        except PermissionError:  # a shared base made by another user: leave it
            if group:
                raise

    def copy_manual(self) -> bool:
        """Mirror ``source``'s pairs (the fallback first) unless the documents manage
        that id; True when anything changed."""
        if self.directory == self.source:
            ids = {p.stem for p in self.source.glob("*.crt") if p.with_suffix(".key").exists()}
            self.manual = ids - {FALLBACK_CERT}
            return False
        changed = False
        for crt in sorted(self.source.glob("*.crt")):
            stem = crt.stem
            key = crt.with_suffix(".key")
            if stem in self.installed or not key.exists():
                continue
            try:
                key_data, crt_data = key.read_bytes(), crt.read_bytes()
            except OSError:
                continue
            target = self.directory / f"{stem}.crt"
            if not (target.exists() and target.read_bytes() == crt_data):
                self._write(self.directory / f"{stem}.key", key_data, secret=True)
                self._write(target, crt_data, secret=False)
                changed = True
            if stem != FALLBACK_CERT:
                self.manual.add(stem)
        return changed

    # ------------------------------------------------------------------ installing

    def sync(
        self, wanted: Mapping[str, Certificate], open_key: Callable[[Certificate], bytes]
    ) -> bool:
        """Install every certificate of ``wanted`` (id -> certificate carrying its chain
        and key reference) not installed yet or changed; mark the others stale. Returns
        True when a file was written. Failures are kept in :attr:`errors` (the pair is
        retried at the next pass)."""
        changed = False
        self.errors = {}
        now = self.clock()
        for cert_id, cert in sorted(wanted.items()):
            self._stale.pop(cert_id, None)
            if cert.chain_pem is None or cert.key_ref is None:
                continue
            fingerprint = cert.fingerprint or hashlib.sha256(cert.chain_pem.encode()).hexdigest()
            if self.installed.get(cert_id) == fingerprint:
                continue
            try:
                key = open_key(cert)
                info = check_pair(cert.chain_pem, key)
                _same_fingerprint(cert, info.fingerprint)
                self._write(self.directory / f"{cert_id}.key", key, secret=True)
                self._write(self.directory / f"{cert_id}.crt", info.chain_pem.encode(), False)
            except (KeyPairError, OSError, ValueError) as exc:
                self.errors[cert_id] = str(exc) or type(exc).__name__
                continue
            self.installed[cert_id] = fingerprint
            self.manual.discard(cert_id)
            changed = True
        for cert_id in self.installed:
            if cert_id not in wanted:
                self._stale.setdefault(cert_id, now)
        return changed

    def collect(self, referenced: frozenset[str] | None) -> bool:
        """Remove the files of stale certificates that ``referenced`` (the ids the
        revision nginx serves uses; None when unknown) does not name and whose grace
        period is over. True when files were removed."""
        if referenced is None:
            return False
        now = self.clock()
        removed = False
        for cert_id, since in list(self._stale.items()):
            if cert_id in referenced or now - since < STALE_GRACE:
                continue
            for suffix in (".crt", ".key"):  # the certificate first: no longer "installed"
                with contextlib.suppress(FileNotFoundError):
                    (self.directory / f"{cert_id}{suffix}").unlink()
            del self._stale[cert_id]
            self.installed.pop(cert_id, None)
            removed = True
        return removed

    def ids(self) -> frozenset[str]:
        """Certificate ids nginx may use (installed from the documents or by hand)."""
        return frozenset(self.installed) | frozenset(self.manual)

    def remove_all(self) -> None:
        """Delete the runtime directory (at a clean stop; never the state's ``certs/``)."""
        if self.directory == self.source:
            return
        for path in self.directory.glob("*"):
            with contextlib.suppress(OSError):
                path.unlink()
        with contextlib.suppress(OSError):
            self.directory.rmdir()
        self.installed.clear()

    def _write(self, path: Path, data: bytes, secret: bool) -> None:
        """Atomically: a temporary file with the final owner and mode, then a rename."""
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            if self.group is not None:
                os.fchown(fd, 0, self.group)
            os.fchmod(fd, (0o640 if self.group is not None else 0o600) if secret else 0o644)
            os.write(fd, data)
            if self.directory == self.source:  # on disk: make it durable
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)


def _same_fingerprint(cert: Certificate, fingerprint: str) -> None:
    if cert.fingerprint and fingerprint != cert.fingerprint:
        raise KeyPairError("the chain's fingerprint differs from the stored one")
