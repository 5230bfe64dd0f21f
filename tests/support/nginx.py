"""A real nginx under a private prefix, for tests (and anything else that needs one).

- :func:`make_prefix` creates the directories nginx will not create itself (``logs``,
  ``conf``, ``certs``, ``acme``);
- :func:`write_tree` writes a rendered tree into ``prefix/conf`` (replacing it);
- :func:`nginx_test` runs ``nginx -t`` against it, as the server would run;
- :func:`running_nginx` starts nginx in the foreground, waits until every given address
  accepts connections, and stops it with QUIT (graceful) when the block ends;
- :func:`worker_pids` / :func:`wait_new_workers` follow worker generations across a reload.

As root, nginx's workers drop to ``nobody`` unless the configuration says otherwise, and
``nobody`` cannot read a pytest tmp directory (mode 0700); tests therefore render with
``NodeView(user=worker_user())``, which is ``root`` when the suite runs as root (CI) and
``None`` (no ``user`` directive, workers run as the invoking user) otherwise.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

__all__ = [
    "NGINX",
    "Nginx",
    "NginxFailed",
    "free_port",
    "make_prefix",
    "nginx_command",
    "nginx_test",
    "running_nginx",
    "wait_new_workers",
    "wait_workers_gone",
    "worker_pids",
    "worker_user",
    "write_tree",
]

NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin") or "/usr/sbin/nginx"
START_TIMEOUT = 15.0
POLL = 0.01


class NginxFailed(RuntimeError):
    """nginx refused a configuration or died; the message carries its own words."""


def worker_user() -> str | None:
    """The ``user`` to render: ``root`` when running as root (see the module docstring)."""
    return "root" if os.geteuid() == 0 else None


def make_prefix(prefix: Path) -> Path:
    """Create a private nginx prefix: nginx creates neither ``logs/`` nor the parent of
    its temp directories (``temp/``); ``certs/`` and ``acme/`` are render's defaults."""
    for sub in ("logs", "temp", "conf", "certs", "acme"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    return prefix


def write_tree(prefix: Path, files: Mapping[str, bytes]) -> Path:
    """Replace ``prefix/conf`` with ``files``; returns the conf directory."""
    conf = prefix / "conf"
    if conf.exists():
        shutil.rmtree(conf)
    for rel, data in files.items():
        target = conf / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return conf


def nginx_command(prefix: Path, *extra: str) -> list[str]:
    return [
        NGINX,
        "-p",
        f"{prefix}/",
        "-e",
        str(prefix / "logs" / "error.log"),
        "-c",
        "conf/nginx.conf",
        "-g",
        "daemon off;",
        *extra,
    ]


def nginx_test(prefix: Path, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """``nginx -t`` on ``prefix/conf/nginx.conf``; stderr holds nginx's verdict."""
    return subprocess.run(
        nginx_command(prefix, "-t"), capture_output=True, text=True, timeout=timeout, check=False
    )


def free_port(host: str = "127.0.0.1", kind: int = socket.SOCK_STREAM) -> int:
    """A port the kernel considers free on ``host`` right now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name may hold spaces and parentheses: fields follow the last ')'
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[1]) if fields[0] != "Z" else None


def worker_pids(master: int) -> set[int]:
    """Live children of ``master`` (its workers; /proc has no children list here)."""
    out: set[int] = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _ppid(int(entry)) == master:
            out.add(int(entry))
    return out


async def wait_new_workers(master: int, old: set[int]) -> set[int]:
    """After a reload: wait until a worker that is not in ``old`` runs; return the new ones.

    Polled (nginx signals nothing); bounded by :data:`START_TIMEOUT`."""
    with trio.fail_after(START_TIMEOUT):
        while True:
            new = worker_pids(master) - old
            if new:
                return new
            await trio.sleep(POLL)


async def wait_workers_gone(pids: set[int]) -> None:
    """Wait until none of ``pids`` runs (old workers finish their requests first)."""
    with trio.fail_after(START_TIMEOUT):
        while True:
            if all(_ppid(pid) is None for pid in pids):
                return
            await trio.sleep(POLL)  # /proc offers nothing to wait on


@dataclass
class Nginx:
    """A running foreground nginx."""

    prefix: Path
    process: trio.Process

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def error_log(self) -> str:
        path = self.prefix / "logs" / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def reload(self) -> set[int]:
        """HUP; wait for the new worker generation and for the old one to exit (so no
        old worker accepts another connection); returns the new workers' pids."""
        old = worker_pids(self.pid)
        self.process.send_signal(signal.SIGHUP)
        new = await wait_new_workers(self.pid, old)
        await wait_workers_gone(old)
        return new


async def _wait_listening(
    process: trio.Process, addresses: Iterable[tuple[str, int]], prefix: Path
) -> None:
    pending = list(addresses)
    with trio.fail_after(START_TIMEOUT):
        while pending:
            if process.returncode is not None:
                raise NginxFailed(_failure(prefix, process.returncode))
            host, port = pending[0]
            try:
                stream = await trio.open_tcp_stream(host, port)
            except OSError:
                await trio.sleep(POLL)  # bound by fail_after; nginx has no ready signal
                continue
            await stream.aclose()
            pending.pop(0)


def _failure(prefix: Path, code: int) -> str:
    log = (prefix / "logs" / "error.log").read_text(errors="replace")
    tail = "\n".join(line for line in log.splitlines() if "[emerg]" in line or "[alert]" in line)
    return f"nginx exited with {code}: {tail or log[-2000:]}"


async def _wait_workers(master: int, count: int) -> None:
    with trio.fail_after(START_TIMEOUT):
        while True:
            if len(worker_pids(master)) >= count:
                return
            await trio.sleep(POLL)  # /proc offers nothing to wait on


@asynccontextmanager
async def running_nginx(
    prefix: Path, listening: Iterable[tuple[str, int]] = (), workers: int = 1
) -> AsyncIterator[Nginx]:
    """Run nginx in the foreground on ``prefix/conf`` until the block ends.

    Waits until every ``(host, port)`` in ``listening`` accepts TCP connections and
    ``workers`` workers run (the master binds before it forks them: a reload timed
    before they all exist would mistake a late first worker for a new generation). On
    exit sends QUIT and waits for a graceful stop; kills it if that takes too long.
    """
    checked = await trio.run_process(
        nginx_command(prefix, "-t"), capture_stdout=True, capture_stderr=True, check=False
    )
    if checked.returncode != 0:
        raise NginxFailed(checked.stderr.decode(errors="replace"))
    process = await trio.lowlevel.open_process(
        nginx_command(prefix), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
    )
    try:
        await _wait_listening(process, listening, prefix)
        await _wait_workers(process.pid, workers)
        yield Nginx(prefix, process)
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.send_signal(signal.SIGQUIT)
                with trio.move_on_after(10):
                    await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()
