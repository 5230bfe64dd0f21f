"""What a node tells about itself to an operator on another node: its last apply (with
nginx's message), quarantined and degraded units, a metrics summary, and its applied
nginx tree - file list and one file's content.

The daemon answers these reports for its own API directly and for other members through
mesh queries (:meth:`mesh.MeshNode.query`): a :class:`Request` (msgpack
``{"v": 1, "q": "status" | "config", "path": ...}``) in, a msgpack answer out
(``{"ok": report}`` or ``{"error": kind, "detail": ...}``).

**An asker sees only what it could see itself.** A member that does not serve a
workspace does not replicate its document, so a report for it (:class:`View`) leaves out:

- the workspace's files (``http.d/<ws>/...``, ``stream.d/<ws>/...``), units, invalid
  entities, drift paths and document metrics;
- in the shared files (``nginx.conf``, ``http.d/_tls.conf``, ``_redirect.conf``...),
  every line that names them: include lines of their files, the server names their vhosts
  put in the TLS map and the redirect servers, the HSTS maps only their vhosts use (a
  block is hidden whole); such a file is listed ``redacted`` with the size and sha256 of
  what is served;
- in messages (reasons, nginx's output), every line naming one of their files, units,
  upstreams or server names.

Hidden lines become one ``# (hidden: ...)`` line per run. Key material is never in a
report: keys are not in the tree (they live in the certificates directories, which no
read may reach: paths come only from the tree's manifest, every file is opened without
following links and must resolve inside the tree).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import msgpack
from prometheus_client import CollectorRegistry

from mesh import QUERY_MAX_ANSWER
from node.api.services import NoSuchFile
from node.nginx import ApplierStatus
from node.nginx.stage import Manifest, check_relative_path

__all__ = [
    "HIDDEN_LINE",
    "MAX_FILE_BYTES",
    "BadReport",
    "NoSuchFile",
    "Request",
    "View",
    "config_report",
    "hidden_tokens",
    "metrics_summary",
    "pack_answer",
    "pack_error",
    "status_report",
    "tree_tokens",
    "unpack_answer",
    "valid_path",
    "workspace_of_path",
    "workspace_of_unit",
]

VERSION = 1
MAX_FILE_BYTES = 1024 * 1024
"""A file's content is cut here (``truncated``)."""
MAX_PATH = 1024
LISTING_BUDGET = QUERY_MAX_ANSWER - MAX_FILE_BYTES - 64 * 1024
"""Bytes the file list may take in an answer (it leaves room for one file's content)."""
HIDDEN_LINE = "# (hidden: names a workspace the asking node does not serve)"

_WS_DIRS = ("http.d", "stream.d")
_HSTS_VAR = re.compile(r"\$\{?(nxm_hsts_\w+)")
_SPLIT = re.compile(r"[\s;{}\"'()]+")


class BadReport(ValueError):
    """A report request or answer that cannot be read; the message says why."""


# ---------------------------------------------------------------------- the request


@dataclass(frozen=True, slots=True)
class Request:
    """What an asker wants: ``status``, or ``config`` (the file list, and ``path``'s
    content when given)."""

    kind: Literal["status", "config"]
    path: str | None = None

    def pack(self) -> bytes:
        body: dict[str, Any] = {"v": VERSION, "q": self.kind}
        if self.path is not None:
            body["path"] = self.path
        return msgpack.packb(body, use_bin_type=True)

    @classmethod
    def unpack(cls, data: bytes) -> Request:
        """The request in ``data``; :class:`BadReport` when it is not one."""
        body = _unpack(data, "request")
        kind, path = body.get("q"), body.get("path")
        if kind not in ("status", "config"):
            raise BadReport(f"unknown report {kind!r}")
        if path is not None and (kind != "config" or not _plain_path(path)):
            raise BadReport("bad path")
        return cls(kind, path)


def _plain_path(path: object) -> bool:
    if not isinstance(path, str) or len(path) > MAX_PATH:
        return False
    try:
        check_relative_path(path)
    except ValueError:
        return False
    return True


def valid_path(path: str) -> bool:
    """Whether ``path`` can name a file of a tree (relative, no ``..``, not too long)."""
    return _plain_path(path)


def _unpack(data: bytes, what: str) -> dict[str, Any]:
    try:
        body = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            max_bin_len=0,
            max_ext_len=0,
            max_str_len=len(data),
            max_array_len=len(data),
            max_map_len=len(data),
        )
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError):
        raise BadReport(f"the {what} is not msgpack") from None
    if not isinstance(body, dict):
        raise BadReport(f"the {what} is not a map")
    return body


# ---------------------------------------------------------------------- the answer


def pack_answer(report: Mapping[str, Any]) -> bytes:
    return msgpack.packb({"ok": dict(report)}, use_bin_type=True)


def pack_error(kind: Literal["bad-request", "no-such-file"], detail: str) -> bytes:
    return msgpack.packb({"error": kind, "detail": detail}, use_bin_type=True)


def unpack_answer(data: bytes) -> dict[str, Any]:
    """The report in an answer; :class:`NoSuchFile` or :class:`BadReport` for an error."""
    body = _unpack(data, "answer")
    report = body.get("ok")
    if isinstance(report, dict):
        return report
    detail = str(body.get("detail", ""))[:500]
    if body.get("error") == "no-such-file":
        raise NoSuchFile(detail)
    raise BadReport(f"the node refused the request: {detail or body.get('error')}")


# ---------------------------------------------------------------------- what is visible


def workspace_of_path(path: str) -> str | None:
    """The workspace a file of the tree belongs to (``http.d/<ws>/...``), None when it is
    shared."""
    parts = path.split("/")
    return parts[1] if len(parts) >= 3 and parts[0] in _WS_DIRS else None


def workspace_of_unit(unit: str) -> str:
    """A render unit's workspace (``<ws>/vhost/<id>``)."""
    return unit.partition("/")[0]


def _workspace_of_document(name: str) -> str | None:
    head, sep, ws = name.partition(":")
    return ws if sep and head == "workspace" else None


@dataclass(frozen=True)
class View:
    """What one asker may see: everything but the ``hidden`` workspaces and the lines of
    shared files and messages naming them (``tokens``: their server names and HSTS map
    variables that no visible workspace uses too)."""

    hidden: frozenset[str] = frozenset()
    tokens: frozenset[str] = frozenset()
    _pattern: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.hidden:
            ids = "|".join(re.escape(ws) for ws in sorted(self.hidden, key=len, reverse=True))
            # A path (http.d/<ws>/), a unit (<ws>/vhost/<id>) or an upstream (nxm.<ws>.<id>).
            pattern = rf"(?<![\w.-])(?:{ids})/|\bnxm\.(?:{ids})\."
            object.__setattr__(self, "_pattern", re.compile(pattern))

    @property
    def everything(self) -> bool:
        return not self.hidden

    def path(self, path: str) -> bool:
        ws = workspace_of_path(path)
        return ws is None or ws not in self.hidden

    def unit(self, unit: str) -> bool:
        return workspace_of_unit(unit) not in self.hidden

    def document(self, name: str) -> bool:
        ws = _workspace_of_document(name)
        return ws is None or ws not in self.hidden

    def names_hidden(self, line: str) -> bool:
        """Whether ``line`` names something of a hidden workspace."""
        if self._pattern is None:
            return False
        if self._pattern.search(line):
            return True
        if not self.tokens:
            return False
        return any(t.lstrip("\\") in self.tokens for t in _SPLIT.split(line) if t)

    def text(self, text: str, *, blocks: bool = False) -> str:
        """``text`` with the lines naming hidden workspaces replaced (with ``blocks``, a
        hidden line opening a ``{`` block hides the block too)."""
        if self._pattern is None or not text:
            return text
        out: list[str] = []
        depth = 0  # > 0 while inside a hidden block
        for line in text.split("\n"):
            if depth:
                depth += line.count("{") - line.count("}")
                hidden = True
            else:
                hidden = self.names_hidden(line)
                if hidden and blocks:
                    depth = max(0, line.count("{") - line.count("}"))
            if not hidden:
                out.append(line)
            elif not out or out[-1].strip() != HIDDEN_LINE:
                indent = line[: len(line) - len(line.lstrip())]
                out.append(indent + HIDDEN_LINE)
        return "\n".join(out)


def hidden_tokens(files: Iterable[tuple[str, str]], hidden: frozenset[str]) -> frozenset[str]:
    """Server names and HSTS variables that only the hidden workspaces' files use, from
    ``(path, text)`` of every workspace file of a tree."""
    seen: dict[bool, set[str]] = {True: set(), False: set()}
    for path, text in files:
        ws = workspace_of_path(path)
        if ws is None:
            continue
        bucket = seen[ws in hidden]
        for line in text.split("\n"):
            words = [w for w in _SPLIT.split(line) if w]
            if words and words[0] == "server_name":
                bucket.update(words[1:])
            bucket.update("$" + m for m in _HSTS_VAR.findall(line))
    return frozenset(seen[True] - seen[False])


# ---------------------------------------------------------------------- status


def _num(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


def metrics_summary(
    registry: CollectorRegistry, view: View, status: ApplierStatus
) -> dict[str, Any]:
    """A few figures from the node's own Prometheus registry (documents: those ``view``
    shows only)."""
    samples: dict[str, float] = {}
    reloads: dict[str, float] = {}
    drops = failures = 0.0
    documents: dict[str, float] = {}
    for metric in registry.collect():
        for s in metric.samples:
            if s.name == "nxmesh_nginx_reloads_total":
                reloads[s.labels.get("outcome", "")] = s.value
            elif s.name == "nxmesh_nginx_apply_failures_total":
                failures += s.value
            elif s.name == "nxmesh_mesh_drops_total":
                drops += s.value
            elif s.name == "nxmesh_state_log_bytes":
                documents[s.labels.get("document", "")] = s.value
            elif not s.labels:
                samples[s.name] = s.value
    shown = {name: size for name, size in documents.items() if view.document(name)}
    return {
        "reloads_ok": int(reloads.get("ok", 0)),
        "reloads_failed": int(reloads.get("failed", 0)),
        "reloads_rolled_back": int(reloads.get("rollback", 0)),
        "apply_failures": int(failures),
        "applies": int(samples.get("nxmesh_nginx_apply_duration_seconds_count", 0)),
        "last_apply_duration_s": round(status.duration, 4),
        "revision_age_s": _num(samples.get("nxmesh_nginx_revision_age_seconds")),
        "nginx_up": bool(samples.get("nxmesh_nginx_up", 0)),
        "mesh_datagrams_in": int(samples.get("nxmesh_mesh_packets_in_total", 0)),
        "mesh_datagrams_out": int(samples.get("nxmesh_mesh_packets_out_total", 0)),
        "mesh_drops": int(drops),
        "local_edits": int(samples.get("nxmesh_state_local_edits_total", 0)),
        "remote_updates": int(samples.get("nxmesh_state_remote_updates_total", 0)),
        "documents": len(shown),
        "document_bytes": int(sum(shown.values())),
    }


def status_report(
    status: ApplierStatus,
    apply: Mapping[str, Any],
    units: Mapping[str, Mapping[str, str]],
    invalid: Iterable[str],
    metrics: Mapping[str, Any],
    view: View,
) -> dict[str, Any]:
    """The status part of a report: ``apply`` is what the node publishes (its
    ``/v1/status`` ``apply``: every member sees it already), ``units`` its units that are
    not ok."""
    changed = False

    def text(value: str) -> str:
        nonlocal changed
        shown = view.text(value)
        changed = changed or shown != value
        return shown

    apply = dict(apply)
    served = apply.get("workspaces")
    if isinstance(served, Mapping):  # per-workspace digests: only the asker's workspaces
        apply["workspaces"] = {ws: d for ws, d in served.items() if ws not in view.hidden}
        changed = len(apply["workspaces"]) != len(served)
    invalid = list(invalid)
    quarantined = [
        {"unit": q.unit, "reason": text(q.reason)} for q in status.quarantined if view.unit(q.unit)
    ]
    shown_units = {
        unit: {k: text(str(v)) for k, v in info.items()}
        for unit, info in units.items()
        if view.unit(unit)
    }
    shown_invalid = [text(line) for line in invalid if view.document(line.partition(": ")[0])]
    drift = [p for p in status.drift if view.path(p)]
    last_apply = {
        "state": status.state,
        "stage": status.stage,
        "reason": text(status.reason),
        "nginx_message": text(status.nginx_message),
        "revision": status.revision,
        "desired_revision": status.desired_revision,
        "applied_at": status.applied_at,
        "updated_at": status.updated_at or None,
        "duration_s": round(status.duration, 4),
        "drift": drift,
    }
    left_out = (
        len(quarantined) != len(status.quarantined)
        or len(shown_units) != len(units)
        or len(shown_invalid) != len(invalid)
        or len(drift) != len(status.drift)
    )
    return {
        "apply": apply,
        "last_apply": last_apply,
        "quarantined": quarantined,
        "units": shown_units,
        "invalid": shown_invalid,
        "metrics": dict(metrics),
        "filtered": left_out or changed,
    }


# ---------------------------------------------------------------------- config


def _ordered(paths: Iterable[str]) -> list[str]:
    return sorted(paths, key=lambda p: (p != "nginx.conf", p))


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def read_tree_file(tree: Path, rel: str, forbidden: Iterable[Path], limit: int) -> bytes:
    """Up to ``limit`` bytes of ``tree/rel`` (blocking): never through a link, never
    outside the tree, never under a ``forbidden`` directory; OSError otherwise."""
    pure = check_relative_path(rel)
    root = tree.resolve()
    full = root / pure
    real = Path(os.path.realpath(full))
    if not _inside(real, root) or any(_inside(real, f.resolve()) for f in forbidden):
        raise PermissionError(f"{rel} is outside the applied tree")
    fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise PermissionError(f"{rel} is not a regular file")
        return f.read(limit)


def tree_tokens(
    tree: Path, manifest: Manifest, hidden: frozenset[str], forbidden: Iterable[Path] = ()
) -> frozenset[str]:
    """:func:`hidden_tokens` of an applied tree (blocking: reads every workspace file)."""
    forbidden = tuple(forbidden)

    def texts() -> Iterable[tuple[str, str]]:
        for rel in manifest.files:
            if workspace_of_path(rel) is None:
                continue
            try:
                data = read_tree_file(tree, rel, forbidden, MAX_FILE_BYTES)
            except OSError:
                continue
            yield rel, data.decode("utf-8", "replace")

    return hidden_tokens(texts(), hidden)


def config_report(
    tree: Path | None,
    manifest: Manifest | None,
    view: View,
    path: str | None,
    *,
    forbidden: Iterable[Path] = (),
    read: Callable[[Path, str, Iterable[Path], int], bytes] = read_tree_file,
) -> dict[str, Any]:
    """The applied tree as ``view`` shows it: its files (path, size, sha256, redacted)
    and, for ``path``, that file's content (blocking I/O: run it in a thread).
    :class:`NoSuchFile` when ``path`` is not a file of that list."""
    forbidden = tuple(forbidden)
    if tree is None or manifest is None:
        if path is not None:
            raise NoSuchFile(f"{path}: nothing has been applied yet")
        return {"revision": None, "applied_at": None, "files": [], "total": 0,
                "truncated": False, "filtered": False, "file": None}  # fmt: skip
    shown = [p for p in _ordered(manifest.files) if view.path(p)]
    redacted: dict[str, bytes] = {}
    if not view.everything:
        unreadable = set()
        for rel in shown:
            if workspace_of_path(rel) is not None:
                continue
            limit = MAX_FILE_BYTES * 4
            try:
                data = read(tree, rel, forbidden, limit + 1)
            except OSError:
                unreadable.add(rel)  # cannot be checked: not shown
                continue
            if len(data) > limit:
                unreadable.add(rel)  # too large to check whole: not shown either
                continue
            text = view.text(data.decode("utf-8", "replace"), blocks=True).encode()
            if text != data:
                redacted[rel] = text
        shown = [p for p in shown if p not in unreadable]
    files: list[dict[str, Any]] = []
    budget = LISTING_BUDGET
    truncated = False
    for rel in shown:
        size: int | None
        if rel in redacted:
            data = redacted[rel]
            size, sha = len(data), hashlib.sha256(data).hexdigest()
        else:
            size, sha = _size(tree, rel), manifest.files[rel]
        entry = {"path": rel, "size": size, "sha256": sha, "redacted": rel in redacted}
        budget -= len(rel) + 110
        if budget < 0:
            truncated = True
            break
        files.append(entry)
    report: dict[str, Any] = {
        "revision": manifest.revision,
        "applied_at": manifest.applied_at,
        "files": files,
        "total": len(shown),
        "truncated": truncated,
        "filtered": len(shown) != len(manifest.files) or bool(redacted),
        "file": None,
    }
    if path is not None:
        if path not in manifest.files or path not in shown:
            raise NoSuchFile(f"{path} is not a file of the applied configuration")
        file_size: int | None
        if path in redacted:
            data = redacted[path]
            file_size, sha = len(data), hashlib.sha256(data).hexdigest()
        else:
            data = _safe_read(read, tree, path, forbidden, MAX_FILE_BYTES + 1)
            if len(data) > MAX_FILE_BYTES:
                file_size, sha = _size(tree, path), manifest.files[path]
            else:
                file_size, sha = len(data), hashlib.sha256(data).hexdigest()
        report["file"] = {
            "path": path,
            "size": file_size,
            "sha256": sha,
            "redacted": path in redacted,
            "truncated": len(data) > MAX_FILE_BYTES,
            "content": data[:MAX_FILE_BYTES].decode("utf-8", "replace"),
        }
    return report


def _safe_read(
    read: Callable[[Path, str, Iterable[Path], int], bytes],
    tree: Path,
    rel: str,
    forbidden: tuple[Path, ...],
    limit: int,
) -> bytes:
    try:
        return read(tree, rel, forbidden, limit)
    except OSError as exc:
        raise NoSuchFile(f"{rel} cannot be read: {exc.strerror or exc}") from None


def _size(tree: Path, rel: str) -> int | None:
    try:
        st = os.lstat(tree / PurePosixPath(rel))
    except OSError:
        return None
    return st.st_size
