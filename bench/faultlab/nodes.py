"""One NxMesh node inside a lab namespace: ``nxmesh init|join|run`` through ``ip netns
exec``, with managed nginx bound to the namespace's address, and the process-level
faults (kill -9, SIGSTOP/SIGCONT, killing nginx, a full disk).

The API is a Unix socket in the state directory, reachable from the root namespace, so
every API call is made from here; HTTP through nginx runs inside the namespace
(:meth:`LabNode.fetch`).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.faultlab.net import REPO, NetLab, NetLabError, disk_source, need, run

__all__ = ["ApiAnswer", "LabNode", "NodeError", "api_call"]

MESH_PORT = 7946
HTTP_PORT = 8080
HTTPS_PORT = 8443
START_WAIT = 40.0
_PR_SET_PDEATHSIG = 1


class NodeError(Exception):
    """A node did not start, or a command on it failed; the message says why."""


def _die_with_parent() -> None:
    # Between fork and exec: the daemon dies with the harness (it is started from the
    # main thread, whose end is the harness's end). Linux only; best effort.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


@dataclass(frozen=True)
class ApiAnswer:
    """One API call's outcome: ``status`` 0 when no answer came (``error`` says why)."""

    status: int
    body: Any = None
    error: str = ""
    maybe_done: bool = False
    """No answer, but the request may have been carried out (a timeout, or the
    connection lost after the request was sent); False when it never got through."""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def api_call(
    socket_path: Path, method: str, path: str, body: Any = None, timeout: float = 5.0
) -> ApiAnswer:
    """One request to a node's API socket; never raises for transport errors."""
    transport = httpx.HTTPTransport(uds=str(socket_path))
    try:
        with httpx.Client(transport=transport, base_url="http://nxmesh", timeout=timeout) as c:
            response = c.request(method, path, json=body)
    except (httpx.ConnectError, httpx.ConnectTimeout, FileNotFoundError) as exc:
        return ApiAnswer(0, None, repr(exc))
    except (httpx.HTTPError, OSError) as exc:
        return ApiAnswer(0, None, repr(exc), maybe_done=True)
    try:
        data = response.json() if response.content else None
    except ValueError:
        data = response.text
    return ApiAnswer(response.status_code, data)


@dataclass
class LabNode:
    """A node in namespace ``slot`` of ``lab`` under ``root/name``."""

    name: str
    slot: int
    root: Path
    lab: NetLab
    preset: str = "local"
    process: subprocess.Popen[bytes] | None = None
    paused: bool = False
    mounted: bool = False
    """Its state directory is a size-limited tmpfs (the full-disk fault)."""

    @property
    def address(self) -> str:
        return self.lab.addresses[self.slot]

    @property
    def listen(self) -> str:
        return f"{self.address}:{MESH_PORT}"

    @property
    def state(self) -> Path:
        return self.root / self.name

    @property
    def socket(self) -> Path:
        return self.state / "api.sock"

    @property
    def log(self) -> Path:
        return self.root / f"{self.name}.log"

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else "(no log)"

    # ------------------------------------------------------------------ creation

    def _identity_args(self) -> list[str]:
        return [
            "--state-dir", str(self.state), "--name", self.name, "--listen", self.listen,
            "--http", f"{self.address}:{HTTP_PORT}", "--https", f"{self.address}:{HTTPS_PORT}",
            "--nginx", "managed", "--preset", self.preset,
        ]  # fmt: skip

    def _cli(self, *args: str, wait: float = 60.0) -> str:
        argv = self.lab.python(self.slot, "-m", "node.cli", *args)
        try:
            result = subprocess.run(
                argv, capture_output=True, text=True, timeout=wait, cwd=REPO, check=False
            )
        except subprocess.TimeoutExpired:
            raise NodeError(f"{self.name}: nxmesh {args[0]} took over {wait:g} s") from None
        if result.returncode != 0:
            message = result.stderr.strip() or result.stdout.strip()
            raise NodeError(f"{self.name}: nxmesh {args[0]} failed: {message}")
        return result.stdout

    def mount_small_disk(self, size_mb: int) -> None:
        """Put the state directory on a tmpfs of ``size_mb`` MiB (before init/join)."""
        self.state.mkdir(mode=0o700, parents=True, exist_ok=True)
        run([need("mount"), "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700",
             disk_source(self.lab.tag), str(self.state)])  # fmt: skip
        self.mounted = True

    def unmount(self) -> None:
        if self.mounted:
            umount = need("umount")
            if run([umount, str(self.state)], check=False).returncode != 0:
                run([umount, "-l", str(self.state)], check=False)
            self.mounted = False

    def init(self) -> None:
        self._cli("init", *self._identity_args())

    def join(self, token: str) -> None:
        self._cli("join", token, *self._identity_args())

    # ------------------------------------------------------------------ process

    def start(self, wait: float = START_WAIT) -> None:
        """``nxmesh run`` in the namespace; returns once the API answers."""
        self.spawn()
        self.wait_ready(wait)

    def spawn(self) -> None:
        """Start ``nxmesh run`` (from the main thread: the child dies with it)."""
        argv = self.lab.python(
            self.slot, "-m", "node.cli", "run", "--state-dir", str(self.state), "--log-json"
        )
        env = {**os.environ, "NXMESH_DEBUG": "1"}  # tracebacks in the log
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                cwd=REPO,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self.paused = False

    def wait_ready(self, wait: float = START_WAIT) -> None:
        """Wait until the API of the daemon :meth:`spawn` started answers."""
        assert self.process is not None
        deadline = time.monotonic() + wait
        while True:
            if self.process.poll() is not None:
                raise NodeError(f"{self.name} exited at start:\n{self.tail()}")
            if self.socket.exists() and api_call(self.socket, "GET", "/v1/status", timeout=2).ok:
                return
            if time.monotonic() > deadline:
                raise NodeError(f"{self.name} did not start within {wait:g} s:\n{self.tail()}")
            time.sleep(0.05)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exit_code(self) -> int | None:
        """The exit status if the daemon we started has ended on its own, else None."""
        return None if self.process is None else self.process.poll()

    def stop(self, wait: float = 20.0) -> int:
        """SIGTERM (leave and stop); SIGKILL after ``wait``. Returns the exit status."""
        if self.process is None:
            return 0
        if self.paused:
            self.resume()
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            code = self.process.wait(timeout=10)
        self.process = None
        return code

    def kill9(self) -> None:
        """``kill -9`` of the daemon (its nginx, in a session of its own, keeps serving)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None
        self.paused = False

    def pause(self) -> None:
        """SIGSTOP: a stalled host (its nginx keeps serving)."""
        if self.process is not None and not self.paused:
            os.kill(self.process.pid, signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        if self.process is not None and self.paused:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGCONT)
        self.paused = False

    def nginx_pid(self) -> int | None:
        try:
            text = (self.state / "nginx" / "logs" / "nginx.pid").read_text()
            return int(text.split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def kill_nginx(self) -> bool:
        """SIGKILL of the nginx master (the supervisor must clean up and restart it)."""
        pid = self.nginx_pid()
        if pid is None:
            return False
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        return True

    def reap_nginx(self) -> None:
        """Stop an nginx the daemon left behind (after kill -9, or at the end)."""
        pid = self.nginx_pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGQUIT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)

    # ------------------------------------------------------------------ disk

    @property
    def filler(self) -> Path:
        return self.state / "faultlab-filler.bin"

    def fill_disk(self) -> int:
        """Write a file until the state directory's disk is full; returns its size."""
        if not self.mounted:
            raise NodeError(f"{self.name}: the full-disk fault needs the node's own tmpfs")
        written = 0
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            # Big blocks first, then ever smaller ones for the last partial block; each
            # size stops at its first refusal (ENOSPC). Bounded: at most 4 GiB.
            for size in (1 << 20, 65536, 4096, 512, 1):
                block = b"\0" * size
                for _ in range(4096):
                    try:
                        written += os.write(fd, block)
                    except OSError:
                        break
        finally:
            os.close(fd)
        return written

    def free_disk(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.filler.unlink()

    # ------------------------------------------------------------------ API and HTTP

    def api(self, method: str, path: str, body: Any = None, timeout: float = 5.0) -> ApiAnswer:
        return api_call(self.socket, method, path, body, timeout)

    def api_ok(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
        """A call that must succeed (set-up steps); :class:`NodeError` otherwise."""
        answer = self.api(method, path, body, timeout)
        if not answer.ok:
            raise NodeError(
                f"{self.name}: {method} {path}: {answer.status} {answer.error or answer.body}"
            )
        return answer.body

    def fetch(self, hosts: list[str], timeout: float = 60.0) -> list[dict[str, Any]]:
        """GET / with each Host through this node's nginx, from inside its namespace."""
        url = f"http://{self.address}:{HTTP_PORT}/"
        request = {"http": [{"url": url, "host": h} for h in hosts]}
        return list(self.lab_probe(request, timeout)["http"])

    def lab_probe(self, request: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
        argv = self.lab.python(self.slot, "-m", "bench.faultlab.probe")
        try:
            result = subprocess.run(
                argv,
                input=json.dumps(request),
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=REPO,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise NetLabError(f"the probe in {self.lab.namespaces[self.slot]} hung") from None
        if result.returncode != 0:
            raise NetLabError(f"the probe failed: {result.stderr.strip()[-500:]}")
        answer: dict[str, Any] = json.loads(result.stdout)
        return answer
