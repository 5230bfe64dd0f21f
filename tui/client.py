"""The console's connection to one node's API: HTTP/JSON over ``<state-dir>/api.sock``.

Every failure is an :class:`ApiError` with a one-line message an operator can act on:
the daemon not running, the socket missing or not accessible, or the API's problem
document (its detail and, for invalid input, each field with its reason).
"""

from __future__ import annotations

import errno
import grp
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tui.constants import BASE_URL, SOCKET_NAME

__all__ = ["ApiClient", "ApiError", "FieldError", "unreachable_message"]

_WATCH_TIMEOUT = httpx.Timeout(5.0, read=45.0)
"""The watch stream sends a heartbeat every 15 s: three missed ones mean a hung daemon."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """One entry of a problem's ``errors``: where (``servers[1].address``) and why."""

    field: str
    reason: str


class ApiError(Exception):
    """A failed call: the API's problem (``status``, ``kind`` its type's slug, ``errors``)
    or, with kind ``unreachable`` and no status, no answer from the daemon at all."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        kind: str = "",
        errors: tuple[FieldError, ...] = (),
    ) -> None:
        super().__init__(" ".join(message.split()))
        self.message = str(self)
        self.status = status
        self.kind = kind
        """The problem type's slug (``validation``, ``forbidden``...); ``unreachable``."""
        self.errors = errors

    @property
    def unreachable(self) -> bool:
        return self.kind == "unreachable"

    @property
    def forbidden(self) -> bool:
        return self.status == 403


def _socket_group(path: Path) -> str:
    try:
        gid = path.stat().st_gid
    except OSError:
        return "the socket's group"
    try:
        return f"group {grp.getgrgid(gid).gr_name!r}"
    except KeyError:
        return f"group {gid}"


def _os_error(exc: BaseException) -> OSError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno is not None:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def unreachable_message(socket: Path, exc: BaseException | None) -> str:
    """Why nothing answers on ``socket``, in words (``exc`` is the transport's error)."""
    err = _os_error(exc) if exc is not None else None
    hint = "start it with `nxmesh run`, or choose the node with --state-dir"
    if exc is None or (err is not None and err.errno == errno.ENOENT):
        return f"no daemon socket at {socket} (is the daemon running? {hint})"
    if err is not None and err.errno == errno.ECONNREFUSED:
        return f"the daemon is not running: nothing answers on {socket} ({hint})"
    if err is not None and err.errno in (errno.EACCES, errno.EPERM):
        return (
            f"permission denied on {socket}: uid {os.getuid()} must be root or in "
            f"{_socket_group(socket)} to use this node's API"
        )
    if isinstance(exc, httpx.TimeoutException):
        return f"the daemon did not answer on {socket} in time"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return f"the daemon closed the connection on {socket}"
    return f"cannot talk to the daemon on {socket}: {exc}"


def problem_error(status: int, body: Any) -> ApiError:
    """An :class:`ApiError` from a problem document (RFC 9457 with ``errors``)."""
    if not isinstance(body, dict):
        return ApiError(f"the daemon answered HTTP {status}", status=status, kind="http")
    kind = str(body.get("type", "")).rpartition(":")[2]
    errors = tuple(
        FieldError(str(e.get("field", "")), str(e.get("reason", "")))
        for e in body.get("errors") or ()
        if isinstance(e, dict)
    )
    detail = str(body.get("detail") or body.get("title") or f"HTTP {status}")
    if kind == "forbidden" and body.get("required_role"):
        detail = f"{detail} (needs the {body['required_role']} role; yours: {body.get('role')})"
    elif kind == "validation" and errors:
        detail = "invalid input: " + "; ".join(f"{e.field}: {e.reason}" for e in errors)
    return ApiError(detail, status=status, kind=kind, errors=errors)


class ApiClient:
    """An asyncio client of one node's API (httpx over the Unix socket)."""

    def __init__(self, state_dir: Path, *, timeout: float = 10.0) -> None:
        self.state_dir = state_dir
        self.socket = state_dir / SOCKET_NAME
        self._client = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=str(self.socket)),
            base_url=BASE_URL,
            timeout=timeout,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def _check_socket(self) -> None:
        if not self.socket.exists() and not self.socket.is_symlink():
            raise ApiError(unreachable_message(self.socket, None), kind="unreachable")

    async def request(
        self, method: str, path: str, *, body: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        """The decoded JSON answer (None for 204); :class:`ApiError` otherwise."""
        self._check_socket()
        try:
            response = await self._client.request(method, path, json=body, params=params)
        except httpx.TransportError as exc:
            raise ApiError(unreachable_message(self.socket, exc), kind="unreachable") from None
        if response.status_code == 204:
            return None
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code >= 400:
            raise problem_error(response.status_code, data)
        return data

    async def get(self, path: str, **params: Any) -> Any:
        query = {k: v for k, v in params.items() if v is not None}
        return await self.request("GET", path, params=query or None)

    async def post(self, path: str, body: Any) -> Any:
        return await self.request("POST", path, body=body)

    async def patch(self, path: str, body: Any) -> Any:
        return await self.request("PATCH", path, body=body)

    async def delete(self, path: str) -> None:
        await self.request("DELETE", path)

    async def watch(self) -> AsyncIterator[dict[str, Any]]:
        """The watch stream's events, until it ends (then :class:`ApiError`)."""
        self._check_socket()
        try:
            async with self._client.stream("GET", "/v1/watch", timeout=_WATCH_TIMEOUT) as answer:
                if answer.status_code >= 400:
                    await answer.aread()
                    try:
                        data = answer.json()
                    except ValueError:
                        data = None
                    raise problem_error(answer.status_code, data)
                async for line in answer.aiter_lines():
                    if not line.strip():
                        continue
                    try:
                        event = json.loads(line)
                    except ValueError:
                        continue  # a torn or foreign line: the next one still counts
                    if isinstance(event, dict):
                        yield event
        except httpx.TransportError as exc:
            raise ApiError(unreachable_message(self.socket, exc), kind="unreachable") from None
        raise ApiError(f"the daemon ended the watch stream on {self.socket}", kind="unreachable")
