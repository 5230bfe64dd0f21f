"""The state directory of one node: what lives where, and the small files in it.

::

    <state dir>/              mode 0700
        config.toml           written by init/join; see node.config
        identity.key          the node's Ed25519 seed, mode 0600, written once
        genesis.bin           the mesh's genesis record (public; fixes the mesh id)
        boot_epoch            a counter that grows on every start (replay protection)
        state.db              the durable store (SQLite, WAL) - crdt.store
        api.sock              the local API (mode 0660)
        nginx/                nginx's private prefix (conf trees, logs, temp dirs)
        certs/                the fallback certificate (documents' certificates go to tmpfs)
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from crdt.trust import Genesis, RecordError, pack_record, parse_record
from mesh import Identity

__all__ = ["StateDir", "StateDirError"]


class StateDirError(Exception):
    """The state directory is missing, unreadable or inconsistent (message: one line)."""


@dataclass(frozen=True)
class StateDir:
    """Paths and small files of one node's state directory."""

    root: Path

    @classmethod
    def at(cls, path: str | os.PathLike[str]) -> StateDir:
        return cls(Path(path).expanduser().resolve())

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def identity_file(self) -> Path:
        return self.root / "identity.key"

    @property
    def genesis_file(self) -> Path:
        return self.root / "genesis.bin"

    @property
    def boot_epoch_file(self) -> Path:
        return self.root / "boot_epoch"

    @property
    def store(self) -> Path:
        return self.root / "state.db"

    @property
    def socket(self) -> Path:
        return self.root / "api.sock"

    @property
    def nginx_prefix(self) -> Path:
        return self.root / "nginx"

    @property
    def certs(self) -> Path:
        return self.root / "certs"

    def initialized(self) -> bool:
        return self.config.exists() and self.identity_file.exists()

    def create(self) -> None:
        """Make the directory (0700); refuse one that already holds a node."""
        if self.config.exists():
            raise StateDirError(
                f"{self.root} already holds a node (config.toml and identity.key exist); "
                "use another --state-dir or remove it"
            )
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        for sub in (self.nginx_prefix, self.certs):
            sub.mkdir(mode=0o700, exist_ok=True)

    def require(self) -> None:
        """:class:`StateDirError` unless ``init`` or ``join`` made this directory."""
        if not self.root.is_dir():
            raise StateDirError(
                f"no state directory at {self.root}: run 'nxmesh init' or 'nxmesh join' first"
            )
        if not self.initialized():
            raise StateDirError(
                f"{self.root} is not an NxMesh state directory "
                "(no config.toml/identity.key): run 'nxmesh init' or 'nxmesh join' first"
            )

    # ------------------------------------------------------------------ identity

    def write_identity(self, identity: Identity) -> None:
        """Store the seed once, created 0600 (never readable by others, not even briefly)."""
        _write_new(self.identity_file, identity.seed, 0o600)

    def read_identity(self) -> Identity:
        path = self.identity_file
        try:
            mode = path.stat().st_mode & 0o777
            data = path.read_bytes()
        except OSError as exc:
            raise StateDirError(f"cannot read {path}: {exc.strerror}") from None
        if mode & 0o077:
            raise StateDirError(
                f"{path} is readable by others (mode {mode:o}); run: chmod 600 {path}"
            )
        try:
            return Identity.from_seed(data)
        except ValueError:
            raise StateDirError(f"{path} is damaged (not a 32-byte key)") from None

    # ------------------------------------------------------------------ genesis

    def write_genesis(self, genesis: Genesis) -> None:
        _write_new(self.genesis_file, pack_record(genesis), 0o644)

    def read_genesis(self) -> Genesis:
        try:
            record = parse_record(self.genesis_file.read_bytes())
        except OSError as exc:
            raise StateDirError(f"cannot read {self.genesis_file}: {exc.strerror}") from None
        except RecordError as exc:
            raise StateDirError(f"{self.genesis_file} is damaged: {exc}") from None
        if not isinstance(record, Genesis) or not record.is_signed():
            raise StateDirError(f"{self.genesis_file} is not a valid genesis record")
        return record

    # ------------------------------------------------------------------ boot epoch

    def next_boot_epoch(self) -> int:
        """A boot epoch larger than every earlier one of this node, persisted (fsync)
        before it is used: peers reject datagrams from an epoch they saw end."""
        path = self.boot_epoch_file
        try:
            last = int(path.read_text().strip() or 0)
        except FileNotFoundError:
            last = 0
        except (OSError, ValueError):
            last = 0  # damaged: the clock below still moves forward
        epoch = max(last + 1, time.time_ns())
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            f.write(f"{epoch}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(self.root)
        return epoch


def _write_new(path: Path, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise StateDirError(f"{path} already exists; refusing to overwrite it") from None
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
