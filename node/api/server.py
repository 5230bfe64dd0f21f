"""Serving the API on a Unix socket with hypercorn's trio worker, with the peer's uid.

Hypercorn puts nothing about a Unix-socket peer into the ASGI scope (``client`` is None
for AF_UNIX and ``extensions`` carries no transport). So :func:`serve` accepts
connections itself, reads each peer's credentials with ``SO_PEERCRED`` and hands the
connection to hypercorn's per-connection server (``hypercorn.trio.tcp_server.TCPServer``,
which speaks HTTP/1.1 and h2c) with an app that adds
``scope["extensions"]["nxmesh.peer"] = {"pid", "uid", "gid"}`` to every request.

The socket is bound under a temporary name, given its mode (0660) and group, then
renamed into place, so it is never reachable with looser permissions.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
import struct
from functools import partial
from pathlib import Path
from typing import Any, cast

import trio
from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.config import Config
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ASGIFramework
from starlette.types import ASGIApp, Receive, Scope, Send

from node.api.access import PEER_EXTENSION

__all__ = ["SOCKET_MODE", "SocketInUse", "peer_credentials", "serve"]

SOCKET_MODE = 0o660
_MAX_PATH = 107  # sun_path is 108 bytes with the terminating NUL
_UCRED = struct.Struct("3i")


class SocketInUse(RuntimeError):
    """Another process already answers on the socket path."""


def peer_credentials(sock: Any) -> dict[str, int]:
    """``{"pid", "uid", "gid"}`` of the process at the other end of a Unix socket."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return {"pid": pid, "uid": uid, "gid": gid}


class _WithPeer:
    """The app, with this connection's peer credentials in every scope."""

    def __init__(self, app: ASGIApp, peer: dict[str, int]) -> None:
        self.app = app
        self.peer = peer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope = dict(scope)
        scope["extensions"] = {**(scope.get("extensions") or {}), PEER_EXTENSION: self.peer}
        await self.app(scope, receive, send)


def _config() -> Config:
    config = Config()
    config.include_server_header = False
    config.accesslog = None
    return config


def _clear_stale(path: Path) -> None:
    """Remove a socket left by a dead daemon; refuse if one is alive."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise SocketInUse(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise
    else:
        raise SocketInUse(f"another process answers on {path}; is a daemon already running?")
    finally:
        probe.close()
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


async def _connection(app: ASGIApp, config: Config, context: WorkerContext, stream: Any) -> None:
    try:
        peer = peer_credentials(stream.socket)
    except OSError:
        await stream.aclose()
        return
    server = TCPServer(
        ASGIWrapper(cast(ASGIFramework, _WithPeer(app, peer))), config, context, {}, stream
    )
    await server.run()


def _bind(path: Path, mode: int, group: int | None) -> tuple[socket.socket, int]:
    """A listening socket at ``path`` with ``mode`` and ``group`` from the first moment,
    and the inode of its file."""
    if len(os.fsencode(path)) > _MAX_PATH - 16:
        raise ValueError(f"socket path {path} is too long for a Unix socket (max ~90 bytes)")
    _clear_stale(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(temporary))
        os.chmod(temporary, mode)
        if group is not None:
            os.chown(temporary, -1, group)
        sock.listen(128)
        os.rename(temporary, path)
    except BaseException:
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    return sock, path.stat().st_ino


def _remove_if_ours(path: Path, inode: int) -> None:
    with contextlib.suppress(OSError):
        if path.stat().st_ino == inode:
            path.unlink()


async def serve(
    app: ASGIApp,
    socket_path: str | os.PathLike[str],
    *,
    mode: int = SOCKET_MODE,
    group: int | None = None,
    config: Config | None = None,
    task_status: trio.TaskStatus[Path] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``socket_path`` until cancelled; ``task_status.started(path)`` once
    connections are accepted. The socket file is removed on the way out."""
    path = Path(os.fspath(socket_path))
    if not path.is_absolute():
        path = Path.cwd() / path
    stdlib_sock, inode = _bind(path, mode, group)
    sock = trio.socket.from_stdlib_socket(stdlib_sock)
    cfg = config or _config()
    context = WorkerContext(None)
    try:
        async with trio.open_nursery() as nursery:
            listener = trio.SocketListener(sock)
            task_status.started(path)
            handler = partial(_connection, app, cfg, context)
            await trio.serve_listeners(handler, [listener], handler_nursery=nursery)
    finally:
        sock.close()
        _remove_if_ours(path, inode)
