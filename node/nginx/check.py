"""``nginx -t`` on a staged tree, as a child process with a deadline."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import trio

from node.nginx.config import NginxSettings
from node.nginx.errorlog import summarize

__all__ = ["CheckKind", "CheckResult", "exec_error", "nginx_test"]

CheckKind = Literal["ok", "invalid", "timeout", "missing", "denied", "crashed"]
"""``invalid``: nginx rejected the tree (bisection may find the unit); the others say
nginx could not judge it at all, so no unit is to blame."""

_TAIL = 4000


@dataclass(frozen=True, slots=True)
class CheckResult:
    kind: CheckKind
    message: str
    """nginx's own words (its error lines, staged paths made relative), or ours when it
    did not run."""
    duration: float

    @property
    def ok(self) -> bool:
        return self.kind == "ok"

    @property
    def reason(self) -> str:
        return {
            "ok": "",
            "invalid": "nginx -t rejected the configuration",
            "timeout": "nginx -t timed out",
            "missing": "nginx binary not found",
            "denied": "nginx could not be executed",
            "crashed": "nginx -t crashed",
        }[self.kind]


def exec_error(binary: str, exc: OSError) -> tuple[CheckKind, str]:
    """Why ``binary`` could not be started, in words an operator can act on."""
    if isinstance(exc, FileNotFoundError) or exc.errno == errno.ENOENT:
        return "missing", f"nginx binary not found: {binary}"
    if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM):
        return "denied", f"permission denied executing {binary}: {exc.strerror}"
    return "denied", f"cannot execute {binary}: {exc}"


async def _kill(process: trio.Process) -> None:
    # nginx -t holds no state worth a graceful stop; a timeout means kill it now.
    process.kill()


async def nginx_test(
    settings: NginxSettings,
    tree: Path,
    *,
    run_as: tuple[int, int] | None = None,
) -> CheckResult:
    """Run ``nginx -t`` on ``tree/nginx.conf`` with the server's prefix and arguments.

    ``run_as`` (uid, gid) runs it as the server's user - only possible as root; it keeps
    ``nginx -t`` from leaving root-owned files (pid file, temp dirs) in the prefix.
    """
    command = settings.test_command(tree / "nginx.conf")
    options: dict[str, Any] = {}
    if run_as is not None and os.geteuid() == 0 and run_as[0] != 0:
        options.update(user=run_as[0], group=run_as[1], extra_groups=[])
    start = trio.current_time()
    completed: subprocess.CompletedProcess[bytes] | None = None
    try:
        with trio.move_on_after(settings.test_timeout):
            completed = await trio.run_process(
                command,
                stdin=subprocess.DEVNULL,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
                deliver_cancel=_kill,
                **options,
            )
    except OSError as exc:
        kind, message = exec_error(settings.binary, exc)
        return CheckResult(kind, message, trio.current_time() - start)
    duration = trio.current_time() - start
    if completed is None:
        return CheckResult(
            "timeout", f"nginx -t did not finish within {settings.test_timeout:g} s", duration
        )
    text = (completed.stderr + completed.stdout).decode(errors="replace")
    if completed.returncode == 0:
        return CheckResult("ok", summarize(text, strip=str(tree)), duration)
    message = summarize(text, strip=str(tree)) or text[-_TAIL:].strip()
    if completed.returncode < 0:
        name = signal.Signals(-completed.returncode).name
        return CheckResult("crashed", f"nginx -t killed by {name}: {message}", duration)
    return CheckResult("invalid", message, duration)
