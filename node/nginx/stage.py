"""Configuration trees on disk: staging, committing, the atomic ``conf`` swap, pruning.

Layout under the prefix::

    conf -> conf.000042-3fa9c1d2e4b5     the live tree (a relative symlink)
    conf.000042-3fa9c1d2e4b5/            committed trees: <sequence>-<revision[:12]>
    conf.000042-3fa9c1d2e4b5.json        its manifest: revision, file hashes, quarantine
    conf.staging-000043/                 a tree being written or tested
    logs/ temp/                          created by prepare()

nginx resolves relative ``include`` paths against the directory of its ``-c`` file, so a
tree tested in ``conf.staging-N/`` behaves the same once renamed and reached through
``conf/``: rendered files must name each other by relative paths.

Every method does blocking I/O: call them through ``trio.to_thread.run_sync`` (the
applier calls them directly for trees of a few files; see ``NginxSettings.inline_files``).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import re
import shutil
import stat
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

__all__ = ["Manifest", "Staged", "TreeStore", "check_relative_path", "hash_tree"]

_TREE = re.compile(r"^conf\.(?P<seq>\d{6,})-(?P<rev>[0-9A-Za-z]{1,12})$")
_STAGING = re.compile(r"^conf\.staging-(?P<seq>\d{6,})$")
_DIR_MODE = 0o755
_FSYNC_LIMIT = 256
"""Above this many written files a tree is flushed with one syncfs(2) (which also waits
for every other writer on the filesystem) instead of a fsync(2) per file."""
# Trees hold no secrets (keys live in the certificates directory) and the user running
# `nginx -t` may differ from ours in external mode: world-readable is deliberate.
_FILE_MODE = 0o644


def check_relative_path(path: str) -> PurePosixPath:
    """``path`` as a safe relative path inside a tree; ``ValueError`` otherwise."""
    pure = PurePosixPath(path)
    if (
        not path
        or "\0" in path
        or pure.is_absolute()
        or any(part in ("", ".", "..") for part in path.split("/"))
    ):
        raise ValueError(f"unsafe path in rendered tree: {path!r}")
    return pure


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hash_tree(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every regular file under ``root`` (symlinks are listed
    with the hash of their target text, so that an added link shows as drift)."""
    out: dict[str, str] = {}
    for directory, dirnames, filenames in os.walk(root):
        # os.walk lists a symlink to a directory among dirnames and does not descend.
        links = [d for d in dirnames if Path(directory, d).is_symlink()]
        for name in filenames + links:
            full = Path(directory, name)
            rel = full.relative_to(root).as_posix()
            if full.is_symlink():
                out[rel] = "symlink:" + os.readlink(full)
            else:
                out[rel] = _sha256(full.read_bytes())
    return out


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_LIBC = ctypes.CDLL(None, use_errno=True)


def _syncfs(path: Path) -> None:
    """Flush the filesystem holding ``path``: one syncfs(2) costs ~0.1 s where 10,000
    fsync(2) calls cost ~3.7 s (measured); fall back to sync(2) where it is missing."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if getattr(_LIBC, "syncfs", None) is None or _LIBC.syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _open_same(source: Path, inside: str, data: bytes) -> int | None:
    """An open descriptor of ``source`` when it is a regular file of ours inside the
    tree ``inside`` (``realpath`` prefix) with our mode, holding exactly ``data``; else
    None. A FIFO, a directory, a file chmod-ed or edited by hand, a path through a
    planted symlink: none of them is reused."""
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if _holds(fd, source, inside, data):
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


def _holds(fd: int, source: Path, inside: str, data: bytes) -> bool:
    st = os.fstat(fd)
    if (
        not stat.S_ISREG(st.st_mode)
        or stat.S_IMODE(st.st_mode) != _FILE_MODE
        or st.st_uid != os.geteuid()
        or st.st_size != len(data)
        or not os.path.realpath(source).startswith(inside)
    ):
        return False
    with os.fdopen(os.dup(fd), "rb") as f:
        return f.read() == data


def _write_file(path: Path, data: bytes) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, _FILE_MODE)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class Staged:
    path: Path
    hashes: Mapping[str, str]
    written: tuple[str, ...] | None = None
    """Files written afresh (the others are links to a committed, flushed tree); None:
    not known, flush the whole filesystem."""
    directories: tuple[str, ...] = ("",)
    """The tree's directories, itself (``""``) first."""

    @property
    def flushes(self) -> int | None:
        """The fsync(2) calls committing it takes (None: a syncfs(2))."""
        if self.written is None or len(self.written) > _FSYNC_LIMIT:
            return None
        return len(self.written) + len(self.directories)


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a committed tree is, kept next to it so a restarted daemon knows too."""

    revision: str
    desired_revision: str
    files: Mapping[str, str]
    quarantined: tuple[tuple[str, str], ...] = ()
    applied_at: float = field(default_factory=time.time)

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "revision": self.revision,
                "desired_revision": self.desired_revision,
                "files": dict(self.files),
                "quarantined": [list(q) for q in self.quarantined],
                "applied_at": self.applied_at,
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        data = json.loads(raw)
        return cls(
            revision=str(data["revision"]),
            desired_revision=str(data["desired_revision"]),
            files={str(k): str(v) for k, v in data["files"].items()},
            quarantined=tuple((str(u), str(r)) for u, r in data["quarantined"]),
            applied_at=float(data["applied_at"]),
        )


class TreeStore:
    """The trees under one prefix."""

    def __init__(self, prefix: Path, *, keep: int = 3) -> None:
        self.prefix = prefix
        self.link = prefix / "conf"
        self.keep = keep
        self._seq = 0

    # -- set-up ------------------------------------------------------------------------

    def prepare(self) -> None:
        """Create the prefix layout, drop staging leftovers, and adopt a plain ``conf``."""
        for directory in (self.prefix, self.prefix / "logs", self.prefix / "temp"):
            directory.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
        seqs = [0]
        for entry in self.prefix.iterdir():
            match = _STAGING.match(entry.name) or _TREE.match(entry.name)
            if match is None:
                continue
            # Sequence numbers are never reused, not even a crashed staging run's.
            seqs.append(int(match.group("seq")))
            if match.re is _STAGING:
                shutil.rmtree(entry, ignore_errors=True)
        self._seq = max(seqs)
        if self.link.is_dir() and not self.link.is_symlink():
            # A hand-made conf/ from before NxMesh: keep it, out of the way, once.
            aside = self.prefix / f"conf.orig-{int(time.time())}"
            os.rename(self.link, aside)

    # -- staging -----------------------------------------------------------------------

    def stage(self, files: Mapping[str, bytes], base: Path | None = None) -> Staged:
        """Write ``files`` into a fresh staging directory (not yet flushed: most staged
        trees of a bisection are thrown away; :meth:`commit` flushes the one kept).

        A file that the committed tree ``base`` (the one serving) holds byte for byte is
        hard-linked from it instead: an edit of one vhost among thousands writes - and
        later flushes - one file, not the whole tree. Committed trees are never written
        to, so sharing their files is safe; a file changed in place by hand differs and
        is written anew.

        On any error (disk full, permission denied, an unsafe path) the partial directory
        is removed and the error raised.
        """
        if "nginx.conf" not in files:
            raise ValueError("rendered tree has no nginx.conf")
        if base is not None and (base.parent != self.prefix or _TREE.match(base.name) is None):
            raise ValueError(f"not a committed tree: {base}")
        inside = os.path.realpath(base) + os.sep if base is not None else ""
        self._seq += 1
        path = self.prefix / f"conf.staging-{self._seq:06d}"
        hashes: dict[str, str] = {}
        written: list[str] = []
        directories = {""}
        try:
            path.mkdir(mode=_DIR_MODE)
            for rel, data in sorted(files.items()):
                pure = check_relative_path(rel)
                target = path / pure
                if len(pure.parts) > 1:
                    target.parent.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
                    directories.update(p.as_posix() for p in pure.parents if p.parts)
                if not (base is not None and self._link(base / pure, inside, data, target)):
                    _write_file(target, data)
                    written.append(rel)
                hashes[rel] = _sha256(data)
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        return Staged(path, hashes, tuple(written), tuple(sorted(directories)))

    @staticmethod
    def _link(source: Path, inside: str, data: bytes, target: Path) -> bool:
        fd = _open_same(source, inside, data)
        if fd is None:
            return False
        try:
            os.link(source, target, follow_symlinks=False)
            if os.lstat(target).st_ino != os.fstat(fd).st_ino:  # renamed meanwhile
                os.unlink(target)
                return False
        except OSError:  # a filesystem without hard links, a file pruned meanwhile
            return False
        finally:
            os.close(fd)
        return True

    def discard(self, path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def commit(self, staged: Staged, manifest: Manifest) -> Path:
        """Flush a tested staging directory to disk, rename it to its committed name and
        write its manifest: after a crash, ``conf`` never points at a half-written tree.

        The rename and the manifest become durable with the :meth:`swap` that follows
        (one flush of the prefix for all three): a crash before it leaves ``conf`` on the
        old tree, or on a tree or manifest that is missing - which :meth:`current` and
        :meth:`manifest` do not adopt, so the daemon renders afresh."""
        match = _STAGING.match(staged.path.name)
        if match is None:
            raise ValueError(f"not a staging directory: {staged.path}")
        self.flush(staged)
        tree = self.prefix / f"conf.{match.group('seq')}-{manifest.revision[:12]}"
        os.rename(staged.path, tree)
        self.write_manifest(tree, manifest, flush=False)
        return tree

    def install(self, staged: Staged, manifest: Manifest) -> Path:
        """:meth:`commit` then :meth:`swap`: one call (one thread hop) for both."""
        tree = self.commit(staged, manifest)
        self.swap(tree)
        return tree

    @staticmethod
    def flush(staged: Staged) -> None:
        """Make a staged tree durable: its written files and its directories (linked
        files were flushed when the tree they come from was committed)."""
        if staged.written is None or len(staged.written) > _FSYNC_LIMIT:
            _syncfs(staged.path)
            return
        for rel in staged.written:
            _fsync_file(staged.path / rel)
        for rel in reversed(staged.directories):  # deepest first, the tree itself last
            _fsync_dir(staged.path / rel if rel else staged.path)

    def write_manifest(self, tree: Path, manifest: Manifest, *, flush: bool = True) -> None:
        path = Path(f"{tree}.json")
        tmp = Path(f"{tree}.json.tmp")
        # Not fsynced: a manifest torn by a crash does not parse, reads as none, and the
        # daemon renders afresh - as it does for a tree without one.
        tmp.write_bytes(manifest.to_json())
        os.replace(tmp, path)
        if flush:
            _fsync_dir(self.prefix)

    def manifest(self, tree: Path) -> Manifest | None:
        try:
            return Manifest.from_json(Path(f"{tree}.json").read_bytes())
        except (OSError, ValueError, KeyError, TypeError):
            return None

    # -- the live link -----------------------------------------------------------------

    def current(self) -> Path | None:
        """The committed tree ``prefix/conf`` points at, if it points at one."""
        try:
            target = os.readlink(self.link)
        except OSError:
            return None
        if "/" in target or _TREE.match(target) is None:
            return None
        tree = self.prefix / target
        return tree if tree.is_dir() else None

    def link_target(self) -> str:
        """What ``prefix/conf`` is, for drift reports: a link target, ``dir``, or ``''``."""
        if self.link.is_symlink():
            return os.readlink(self.link)
        return "dir" if self.link.exists() else ""

    def swap(self, tree: Path) -> None:
        """Point ``prefix/conf`` at ``tree`` atomically (rename of a new symlink)."""
        if tree.parent != self.prefix or _TREE.match(tree.name) is None:
            raise ValueError(f"not a committed tree: {tree}")
        tmp = self.prefix / f".conf.link-{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(tree.name, tmp)
        if self.link.is_dir() and not self.link.is_symlink():
            os.rename(self.link, self.prefix / f"conf.orig-{int(time.time())}")
        os.replace(tmp, self.link)
        _fsync_dir(self.prefix)

    # -- pruning -----------------------------------------------------------------------

    def trees(self) -> list[Path]:
        """Committed trees, newest first."""
        found = []
        for entry in self.prefix.iterdir():
            if (m := _TREE.match(entry.name)) is not None and entry.is_dir():
                found.append((int(m.group("seq")), entry))
        return [path for _, path in sorted(found, reverse=True)]

    def prune(self, protect: Iterable[Path | None] = ()) -> list[Path]:
        """Delete committed trees beyond the newest ``keep``, never one in ``protect``."""
        keep = {p for p in protect if p is not None}
        removed = []
        for index, tree in enumerate(self.trees()):
            if index < self.keep or tree in keep:
                continue
            shutil.rmtree(tree, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                Path(f"{tree}.json").unlink()
            removed.append(tree)
        return removed
