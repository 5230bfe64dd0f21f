"""Requests from another uid, so the server sees real SO_PEERCRED credentials.

:func:`request_as` forks; the child drops to ``uid``/``gid`` (root only) and speaks one
raw HTTP/1.1 request over the Unix socket - no Python interpreter has to be started as
that user (the interpreter may live where other users cannot read). The parent keeps
serving the API in its trio loop and collects the answer through a pipe.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


def _raw_request(method: str, path: str, body: Any) -> bytes:
    data = b"" if body is None else json.dumps(body).encode()
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: nxmesh\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


def _child(sock_path: str, uid: int, gid: int, request: bytes, out: int) -> None:
    try:
        if os.geteuid() == 0:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock_path)
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        result = data
    except OSError as exc:
        result = f"OSError {exc.errno}".encode()
    view = memoryview(result)
    while view:
        view = view[os.write(out, view) :]


def _parse(raw: bytes) -> Answer:
    if raw.startswith(b"OSError "):
        raise OSError(int(raw.split()[1]), "in the child")
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", len(body)))
    return Answer(status, headers, json.loads(body[:length]) if length else None)


async def request_as(
    sock_path: Path, uid: int, gid: int, method: str, path: str, body: Any = None
) -> Answer:
    """One request as ``uid``/``gid``; raises the child's OSError (e.g. EACCES)."""
    read_end, write_end = os.pipe()
    request = _raw_request(method, path, body)
    pid = os.fork()
    if pid == 0:  # the child: no trio, no pytest, then _exit
        try:
            os.close(read_end)
            _child(str(sock_path), uid, gid, request, write_end)
        finally:
            os._exit(0)
    os.close(write_end)
    chunks = []
    async with trio.lowlevel.FdStream(read_end) as stream:
        while chunk := await stream.receive_some():
            chunks.append(chunk)
    await trio.to_thread.run_sync(os.waitpid, pid, 0)
    return _parse(b"".join(chunks))
