"""The CLI's connection to the local API: HTTP/JSON over ``<state-dir>/api.sock``.

Every failure becomes :class:`ApiError`, a one-line message (no traceback): the daemon not
running, the socket missing or not accessible, or the API's problem (its detail and the
fields it names).
"""

from __future__ import annotations

import errno
import grp
import os
from pathlib import Path
from typing import Any

import click
import httpx

__all__ = ["SOCKET_NAME", "Api", "ApiError"]

SOCKET_NAME = "api.sock"
_BASE = "http://nxmesh"


class ApiError(click.ClickException):
    """A one-line error; ``status`` is the HTTP status when the API answered."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(" ".join(message.split()))
        self.status = status

    def format_message(self) -> str:
        return self.message


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


def problem_message(status: int, body: Any) -> str:
    """One line from a problem document: each field and reason for invalid input, else
    the detail (which names what conflicts)."""
    if not isinstance(body, dict):
        return f"the daemon answered HTTP {status}"
    detail = str(body.get("detail") or body.get("title") or f"HTTP {status}")
    errors = body.get("errors")
    if str(body.get("type", "")).endswith(":validation") and isinstance(errors, list) and errors:
        parts = [f"{e.get('field')}: {e.get('reason')}" for e in errors if isinstance(e, dict)]
        return "invalid input: " + "; ".join(parts)
    return detail


class Api:
    """A small synchronous client of one node's API."""

    def __init__(self, state_dir: Path, timeout: float = 30.0) -> None:
        self.state_dir = state_dir
        self.socket = state_dir / SOCKET_NAME
        self._client = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(self.socket)), base_url=_BASE, timeout=timeout
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _unreachable(self, exc: BaseException) -> ApiError:
        err = _os_error(exc)
        where = self.socket
        hint = "start it with `nxmesh run`, or point at another node with --state-dir"
        if err is not None and err.errno == errno.ENOENT:
            return ApiError(f"no daemon socket at {where} (is the daemon running? {hint})")
        if err is not None and err.errno == errno.ECONNREFUSED:
            return ApiError(f"the daemon is not running: nothing answers on {where} ({hint})")
        if err is not None and err.errno in (errno.EACCES, errno.EPERM):
            return ApiError(
                f"permission denied on {where}: uid {os.getuid()} must be root or in "
                f"{_socket_group(where)} to use this node's API"
            )
        if isinstance(exc, httpx.TimeoutException):
            return ApiError(f"the daemon did not answer on {where} in time")
        return ApiError(f"cannot talk to the daemon on {where}: {exc}")

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """The decoded JSON answer (None for 204); :class:`ApiError` otherwise."""
        if not self.socket.exists() and not self.socket.is_symlink():
            hint = "start it with `nxmesh run`, or choose the node with --state-dir"
            raise ApiError(f"no daemon socket at {self.socket} (is the daemon running? {hint})")
        try:
            response = self._client.request(method, path, json=body, params=params)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        if response.status_code == 204:
            return None
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code >= 400:
            raise ApiError(problem_message(response.status_code, data), response.status_code)
        return data

    def get(self, path: str, **params: Any) -> Any:
        query = {k: v for k, v in params.items() if v is not None}
        return self.request("GET", path, params=query or None)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, body=body)

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, body=body)

    def delete(self, path: str) -> None:
        self.request("DELETE", path)
