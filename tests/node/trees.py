"""Hand-built nginx trees and helpers for the applier tests.

render/ is written in parallel, so trees are built here: a main ``nginx.conf`` including
``units/*.conf``, each unit one server block on 127.0.0.1 and a port of its own answering
``return 200 "<unit>-<rev>"``. A :class:`Fleet` is the desired state; its ``build`` is the
applier's render callable (honouring ``exclude``).

Workers: as root, the tree says ``user www-data`` - unprivileged workers, as in production
(docs/applier.md, "Users and permissions"); the prefix then lives in a world-traversable
directory, since pytest's own tmp directories are 0700.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import trio

from node.nginx import NginxSettings, procs
from render.model import Rendered, UnitStatus

NGINX = "/usr/sbin/nginx"
WAIT = 15.0  # bound for anything nginx does on loopback

MAIN = """\
{user}worker_processes 1;
pid logs/nginx.pid;
error_log logs/error.log notice;
worker_shutdown_timeout 5s;
events {{ worker_connections {connections}; }}
http {{
    access_log off;
    client_body_temp_path temp/client_body;
    proxy_temp_path temp/proxy;
    fastcgi_temp_path temp/fastcgi;
    uwsgi_temp_path temp/uwsgi;
    scgi_temp_path temp/scgi;
{http_extra}    include units/*.conf;
}}
"""


def worker_user_directive() -> str:
    return "user www-data;\n" if os.geteuid() == 0 else ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unit_file(key: str) -> str:
    return "units/" + key.replace("/", "_") + ".conf"


@dataclass
class Unit:
    port: int
    extra: str = ""
    """Directives added inside the server block (e.g. a bad one)."""
    listen: str = ""
    """Added to the listen directive (e.g. ``ssl``)."""
    body: str | None = None
    """Response body; default ``<key>-<fleet rev>``."""


@dataclass
class Fleet:
    """The desired state of these tests: units, and a revision counter in every body."""

    units: dict[str, Unit] = field(default_factory=dict)
    rev: int = 1
    http_extra: str = ""
    worker_connections: int = 256
    builds: list[frozenset[str]] = field(default_factory=list)

    @classmethod
    def of(cls, *keys: str) -> Fleet:
        return cls({key: Unit(free_port()) for key in keys})

    def body(self, key: str) -> str:
        unit = self.units[key]
        return unit.body if unit.body is not None else f"{key}-{self.rev}"

    def files(self, exclude: frozenset[str] = frozenset()) -> dict[str, bytes]:
        main = MAIN.format(
            user=worker_user_directive(),
            http_extra=self.http_extra,
            connections=self.worker_connections,
        )
        files = {"nginx.conf": main.encode()}
        for key, unit in sorted(self.units.items()):
            if key in exclude:
                continue
            listen = f"127.0.0.1:{unit.port}" + (f" {unit.listen}" if unit.listen else "")
            files[unit_file(key)] = (
                f"server {{\n    listen {listen};\n{unit.extra}"
                f'    return 200 "{self.body(key)}";\n}}\n'
            ).encode()
        return files

    def build(self, exclude: frozenset[str]) -> Rendered:
        self.builds.append(exclude)
        files = self.files(exclude)
        digest = hashlib.sha256()
        for path, data in sorted(files.items()):
            digest.update(path.encode() + b"\0" + data + b"\0")
        units = {
            key: UnitStatus("skipped", "excluded") if key in exclude else UnitStatus("ok")
            for key in self.units
        }
        return Rendered(files=files, revision=digest.hexdigest(), units=units)


def make_prefix() -> Path:
    """A fresh prefix that unprivileged workers can traverse (see the module docstring)."""
    base = Path(tempfile.mkdtemp(prefix="nxmesh-applier-", dir="/tmp"))
    base.chmod(0o755)
    return base / "nginx"


def remove_prefix(prefix: Path) -> None:
    """Delete a prefix, killing any nginx process a failed test left running in it (found
    by its open files: orphaned workers have no pid file to point at them)."""
    for pid in _nginx_processes_using(prefix):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(prefix.parent, ignore_errors=True)


def _nginx_processes_using(prefix: Path) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or not procs.cmdline(int(entry)).startswith("nginx:"):
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
            targets = [os.readlink(f"/proc/{entry}/fd/{fd}") for fd in fds]
        except OSError:
            continue
        if any(t.startswith(str(prefix)) for t in targets):
            found.append(int(entry))
    return found


def settings(prefix: Path, **overrides: object) -> NginxSettings:
    """Settings for tests: short quiet periods, no splay, no background drift checks."""
    base: dict[str, object] = {
        "prefix": prefix,
        "binary": NGINX,
        "min_quiet": 0.05,
        "max_quiet": 0.5,
        "splay": 0.0,
        "drift_interval": None,
        "verify_timeout": 10.0,
        "stop_timeout": 5.0,
        "backoff_initial": 0.05,
        "backoff_max": 1.0,
    }
    base.update(overrides)
    return NginxSettings(**base)  # type: ignore[arg-type]


async def get(port: int, path: str = "/") -> tuple[int, str]:
    """A plain HTTP/1.0 GET on 127.0.0.1; (status, body)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(f"GET {path} HTTP/1.0\r\nHost: test\r\n\r\n".encode())
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line = head.split()
    if len(status_line) < 2:
        raise trio.BrokenResourceError(f"not an HTTP response: {data[:80]!r}")
    return int(status_line[1]), body.decode()


async def body_of(port: int) -> str:
    try:
        status, body = await get(port)
    except (OSError, trio.BrokenResourceError) as exc:
        return f"<{type(exc).__name__}>"
    return body if status == 200 else f"<{status}>"


async def serves(port: int, body: str) -> None:
    """Wait until ``port`` answers ``body``: right after a reload an old worker may still
    take a connection or two (nginx signals nothing), so this polls, bounded."""
    last = ""
    try:
        with trio.fail_after(WAIT):
            while True:
                last = await body_of(port)
                if last == body:
                    return
                await trio.sleep(0.02)
    except trio.TooSlowError:
        raise AssertionError(f"port {port} answers {last!r}, not {body!r}") from None


async def stays(port: int, body: str, times: int = 5) -> None:
    """``port`` answers ``body`` on several fresh connections."""
    for _ in range(times):
        assert await body_of(port) == body


async def until(predicate: Callable[[], bool], limit: float = WAIT) -> None:
    """Bounded polling for states nginx offers no event for (process table, files)."""
    with trio.fail_after(limit):
        while True:
            if predicate():
                return
            await trio.sleep(0.02)


def error_log_count(prefix: Path, needle: str) -> int:
    path = prefix / "logs" / "error.log"
    return path.read_text(errors="replace").count(needle) if path.exists() else 0


def listing(prefix: Path, pattern: str) -> list[str]:
    """Names under ``prefix`` matching ``pattern`` that are directories, sorted."""
    return sorted(p.name for p in prefix.glob(pattern) if p.is_dir())


def live_tree(prefix: Path) -> Path:
    return prefix / os.readlink(prefix / "conf")


def read_tree(prefix: Path) -> Mapping[str, bytes]:
    root = live_tree(prefix)
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
