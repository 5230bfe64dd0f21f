"""A canned API on a Unix socket, FOR SNAPSHOTS ONLY: fixed JSON per route and a watch
stream of fixed events, so that screenshots do not depend on ports, keys, times or the
mesh's timing. Behaviour tests use real daemons (test_real_daemon.py)."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from socketserver import ThreadingUnixStreamServer
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["FakeApi", "Route"]

Route = tuple[int, Any]
"""(status, JSON body); a problem document for statuses >= 400. A route's path may hold a
query (``/v1/x?path=a/b``, unquoted): it is preferred to the bare path."""


class _Server(ThreadingUnixStreamServer):
    daemon_threads = True
    fake: FakeApi


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _answer(self, method: str) -> None:
        fake = self.server.fake
        url = urlsplit(self.path)
        path = url.path
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        fake.requests.append((method, path, body))
        if method == "GET" and path == "/v1/watch":
            self._watch(fake)
            return
        missing = (404, _problem(404, "not-found"))
        status, answer = fake.routes.get(
            (method, f"{path}?{unquote(url.query)}"), fake.routes.get((method, path), missing)
        )
        data = json.dumps(answer).encode() if answer is not None else b""
        self.send_response(status)
        ctype = "application/problem+json" if status >= 400 else "application/json"
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _watch(self, fake: FakeApi) -> None:
        self.send_response(200)
        self.send_header("content-type", "application/x-ndjson")
        self.end_headers()
        try:
            for event in [{"type": "hello", "node": fake.node, "seq": 0}, *fake.events]:
                self.wfile.write(json.dumps(event).encode() + b"\n")
            self.wfile.flush()
            while not fake.stopped.wait(0.5):  # hold the stream open, as the daemon does
                self.wfile.write(b'{"type":"heartbeat"}\n')
                self.wfile.flush()
        except OSError:
            return  # the console went away

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def do_PATCH(self) -> None:
        self._answer("PATCH")

    def do_PUT(self) -> None:
        self._answer("PUT")

    def do_DELETE(self) -> None:
        self._answer("DELETE")


def _problem(status: int, kind: str, detail: str = "no such route in the fake API") -> Any:
    return {"type": f"urn:nxmesh:problem:{kind}", "title": kind, "status": status,
            "detail": detail, "errors": []}  # fmt: skip


class FakeApi:
    """Serves ``routes`` ((method, path) -> (status, body)) on ``state_dir/api.sock``."""

    def __init__(
        self,
        state_dir: Path,
        routes: Mapping[tuple[str, str], Route],
        events: list[dict[str, Any]],
        node: str = "n1",
    ) -> None:
        self.socket = state_dir / "api.sock"
        self.routes = dict(routes)
        self.events = events
        self.node = node
        self.requests: list[tuple[str, str, Any]] = []
        self.stopped = threading.Event()
        self._server: _Server | None = None

    def __enter__(self) -> FakeApi:
        self.socket.parent.mkdir(parents=True, exist_ok=True)
        server = _Server(str(self.socket), _Handler)
        server.fake = self
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._server = server
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stopped.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self.socket.unlink(missing_ok=True)
