"""Who runs nginx, as the applier sees it: a managed child or an external process."""

from __future__ import annotations

import os
from typing import Protocol

from node.nginx import procs
from node.nginx.config import NginxSettings
from node.nginx.metrics import Metrics

__all__ = ["ExternalNginx", "NginxServer", "ServerDown"]


def is_nginx_master(cmdline: str) -> bool:
    words = cmdline.split()
    if words[:3] == ["nginx:", "master", "process"]:
        return True
    return bool(words) and os.path.basename(words[0]) == "nginx"


class ServerDown(Exception):
    """nginx is not running and could not be brought up; the message says why."""


class NginxServer(Protocol):
    """What the applier needs of whoever runs nginx."""

    def master_pid(self) -> int | None:
        """The master's pid while nginx serves with workers, else ``None``."""
        ...

    async def ensure_running(self) -> bool:
        """Bring nginx up if that is ours to do; raise :class:`ServerDown` if it is not up.

        True when nginx was started by this call (it read the current tree; no reload)."""
        ...

    def run_as(self) -> tuple[int, int] | None:
        """(uid, gid) to run ``nginx -t`` as, when that differs from ours."""
        ...


class ExternalNginx:
    """nginx run by someone else (a service manager, a Docker sidecar sharing our PID
    namespace), found through its pid file and reloaded with HUP."""

    def __init__(self, settings: NginxSettings, *, metrics: Metrics | None = None) -> None:
        self._settings = settings
        self._metrics = metrics

    def _find(self) -> tuple[int | None, str]:
        path = self._settings.pid_path
        pid = procs.read_pid_file(path)
        if pid is None:
            return None, f"no pid in {path}"
        if not procs.alive(pid):
            return None, f"stale pid file {path}: no process {pid}"
        # nginx names its master "nginx: master process ..." - once it has started its
        # workers; until then it shows its own command line. Anything else holding the
        # pid (reused after a crash) must not get our signals.
        if not is_nginx_master(procs.cmdline(pid)):
            return None, f"process {pid} from {path} is not an nginx master"
        return pid, ""

    def master_pid(self) -> int | None:
        pid, _ = self._find()
        if self._metrics is not None:
            self._metrics.up.set(1 if pid is not None else 0)
        return pid

    async def ensure_running(self) -> bool:
        pid, why = self._find()
        if pid is None:
            raise ServerDown(f"nginx is not running ({why})")
        return False

    def run_as(self) -> tuple[int, int] | None:
        pid, _ = self._find()
        ids = procs.owner(pid) if pid is not None else None
        if ids is None or ids[0] == os.geteuid():
            return None
        return ids
