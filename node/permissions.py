"""Who nginx's workers run as, and what they may read in the state directory.

As root, the daemon (and nginx's master) runs as root but the workers run as an
unprivileged user - ``www-data`` on Debian, else ``nginx`` or ``nobody``. The workers
need to reach the nginx prefix (temp files) and read certificates (loaded per handshake
through a variable path), nothing else: the state directory becomes traversable by the
workers' group only (0710), ``nginx/`` and ``certs/`` readable by that group (0750),
certificate keys 0640; the store and the identity stay 0600.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from node.statedir import StateDir

__all__ = ["WorkerUser", "prepare", "worker_user"]

_CANDIDATES = ("www-data", "nginx", "nobody")


@dataclass(frozen=True)
class WorkerUser:
    name: str
    uid: int
    gid: int


def worker_user() -> WorkerUser | None:
    """The user nginx's workers run as; None when we are not root (they run as us)."""
    if os.geteuid() != 0:
        return None
    for name in _CANDIDATES:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return WorkerUser(name, entry.pw_uid, entry.pw_gid)
    return None


def prepare(state: StateDir, user: WorkerUser) -> None:
    """Give ``user``'s group exactly the access its workers need (idempotent)."""
    _set(state.root, 0o710, user.gid)
    for directory in (state.nginx_prefix, state.certs):
        directory.mkdir(mode=0o750, exist_ok=True)
        _set(directory, 0o750, user.gid)
    for path in state.certs.iterdir():
        if path.suffix == ".key":
            _set(path, 0o640, user.gid)
        elif path.suffix == ".crt":
            _set(path, 0o644, user.gid)
    for path in state.root.glob(f"{state.store.name}*"):
        os.chmod(path, 0o600)


def _set(path: Path, mode: int, gid: int) -> None:
    os.chown(path, 0, gid)
    os.chmod(path, mode)
