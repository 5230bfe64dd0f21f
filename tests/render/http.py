"""Minimal HTTP/1.1 on trio for serving tests: test upstreams and a client.

Upstreams (:func:`start_backend`) answer every request with JSON naming themselves and
echoing what they received (method, path, headers, connection number), keep connections
alive like a real upstream, and switch to an echo after a WebSocket-style ``Upgrade``.
The client (:func:`request`) speaks HTTP/1.1 with ``Connection: close`` over TCP or TLS
and reports the certificate and ALPN protocol the server chose.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass, field
from typing import Any

import trio
from cryptography import x509
from cryptography.x509.oid import NameOID

__all__ = ["Backend", "Response", "request", "start_backend", "start_udp_echo"]

MAX_HEAD = 65536


async def _read_head(stream: trio.abc.Stream, buffer: bytearray) -> bytes | None:
    """Bytes up to the blank line ending a message head; ``None`` at a clean EOF."""
    while b"\r\n\r\n" not in buffer:
        if len(buffer) > MAX_HEAD:
            raise ValueError("message head too large")
        data = await stream.receive_some(65536)
        if not data:
            if buffer:
                raise ValueError("connection closed inside a message head")
            return None
        buffer += data
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    buffer[:] = rest
    return head


async def _read_exact(stream: trio.abc.Stream, buffer: bytearray, size: int) -> bytes:
    while len(buffer) < size:
        data = await stream.receive_some(65536)
        if not data:
            raise ValueError("connection closed inside a body")
        buffer += data
    out = bytes(buffer[:size])
    del buffer[:size]
    return out


def _headers(lines: list[bytes]) -> list[tuple[str, str]]:
    out = []
    for line in lines:
        name, _, value = line.decode("latin-1").partition(":")
        out.append((name.strip().lower(), value.strip()))
    return out


@dataclass
class Seen:
    """One request as an upstream received it."""

    method: str
    path: str
    version: str
    headers: dict[str, str]
    connection: int
    body: bytes


@dataclass
class Backend:
    """A running test upstream."""

    name: str
    host: str
    port: int
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def _serve(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        conn = self.connections
        buffer = bytearray()
        async with stream:
            while True:
                try:
                    head = await _read_head(stream, buffer)
                except (ValueError, trio.BrokenResourceError):
                    return
                if head is None:
                    return
                request_line, *lines = head.split(b"\r\n")
                method, path, version = request_line.decode("latin-1").split(" ", 2)
                headers = dict(_headers(lines))
                body = await _read_exact(stream, buffer, int(headers.get("content-length", "0")))
                self.seen.append(Seen(method, path, version, headers, conn, body))
                if headers.get("upgrade", "").lower() == "websocket":
                    await stream.send_all(
                        b"HTTP/1.1 101 Switching Protocols\r\n"
                        b"Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                    )
                    await self._echo(stream, buffer)
                    return
                payload = json.dumps(
                    {"backend": self.name, "path": path, "headers": headers, "conn": conn}
                ).encode()
                close = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
                await stream.send_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(payload)}\r\n".encode()
                    + (b"Connection: close\r\n" if close else b"")
                    + b"\r\n"
                    + payload
                )
                if close:
                    return

    async def _echo(self, stream: trio.SocketStream, buffer: bytearray) -> None:
        try:
            if buffer:
                await stream.send_all(b"echo:" + bytes(buffer))
            while data := await stream.receive_some(65536):
                await stream.send_all(b"echo:" + data)
        except trio.BrokenResourceError:
            return


async def start_backend(nursery: trio.Nursery, name: str, host: str = "127.0.0.1") -> Backend:
    """Start a test upstream on a free port of ``host``; it runs until the nursery ends."""
    listeners = await trio.open_tcp_listeners(0, host=host)
    port = listeners[0].socket.getsockname()[1]
    backend = Backend(name, host, port)
    nursery.start_soon(trio.serve_listeners, backend._serve, listeners)
    return backend


async def start_udp_echo(nursery: trio.Nursery, host: str = "127.0.0.1") -> int:
    """A UDP server answering each datagram with ``udp:`` + the datagram; returns its port."""
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await sock.bind((host, 0))
    port = int(sock.getsockname()[1])

    async def serve() -> None:
        with sock:
            while True:
                data, peer = await sock.recvfrom(65536)
                await sock.sendto(b"udp:" + data, peer)

    nursery.start_soon(serve)
    return port


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    peer_common_name: str | None = None
    alpn: str | None = None

    def json(self) -> Any:
        return json.loads(self.body)


def _dechunk(body: bytes) -> bytes:
    out = bytearray()
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += body[:size]
        body = body[size + 2 :]
    return bytes(out)


async def request(
    host: str,
    port: int,
    path: str = "/",
    *,
    hostname: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    tls: ssl.SSLContext | None = None,
    sni: str | None = None,
    send_sni: bool = True,
) -> Response:
    """One request on a fresh connection; over TLS, SNI is ``sni`` or else ``hostname``
    (none with ``send_sni=False``, which needs a context that does not check host names)."""
    tcp = await trio.open_tcp_stream(host, port)
    try:
        return await _exchange(tcp, hostname, method, path, headers, body, tls, sni, send_sni)
    finally:
        await trio.aclose_forcefully(tcp)  # also after a failed handshake: nginx waits on it


async def _exchange(
    tcp: trio.SocketStream,
    hostname: str,
    method: str,
    path: str,
    headers: dict[str, str] | None,
    body: bytes,
    tls: ssl.SSLContext | None,
    sni: str | None,
    send_sni: bool,
) -> Response:
    stream: trio.abc.Stream = tcp
    common_name = alpn = None
    if tls is not None:
        ssl_stream = trio.SSLStream(
            stream,
            tls,
            server_hostname=(sni or hostname) if send_sni else None,
            https_compatible=True,
        )
        await ssl_stream.do_handshake()
        der = ssl_stream.getpeercert(binary_form=True)
        if der:
            names = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(
                NameOID.COMMON_NAME
            )
            common_name = str(names[0].value) if names else None
        alpn = ssl_stream.selected_alpn_protocol()
        stream = ssl_stream
    lines = [f"{method} {path} HTTP/1.1", f"Host: {hostname}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    async with stream:
        await stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        data = bytearray()
        try:
            while chunk := await stream.receive_some(65536):
                data += chunk
        except trio.BrokenResourceError:
            pass  # a TLS peer closing without close_notify after Connection: close
    head, _, payload = bytes(data).partition(b"\r\n\r\n")
    status_line, *header_lines = head.split(b"\r\n")
    parsed = dict(_headers(header_lines))
    if parsed.get("transfer-encoding", "").lower() == "chunked":
        payload = _dechunk(payload)
    return Response(int(status_line.split()[1]), parsed, payload, common_name, alpn)
