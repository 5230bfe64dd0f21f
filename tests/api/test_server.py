"""The Unix-socket server: its file, stale sockets, a second daemon, shutdown."""

from __future__ import annotations

import os
import socket
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio

from node.api.server import SocketInUse, serve
from tests.api.support import BASE, make_served


async def test_start_answers_then_removes_its_socket_on_the_way_out(tmp_path: Path) -> None:
    api, app = make_served(tmp_path)
    async with trio.open_nursery() as nursery:
        path = await nursery.start(serve, app, api.socket)
        assert path == api.socket
        async with api.client() as client:
            assert (await client.get("/v1/status")).status_code == 200
        nursery.cancel_scope.cancel()
    assert not api.socket.exists()
    assert sorted(os.listdir(tmp_path)) == ["store.db", "store.db-shm", "store.db-wal"]


async def test_a_stale_socket_is_replaced(tmp_path: Path, nursery: trio.Nursery) -> None:
    api, app = make_served(tmp_path)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(api.socket))  # bound, never listening: what a killed daemon leaves
    dead.close()
    await nursery.start(serve, app, api.socket)
    async with api.client() as client:
        assert (await client.get("/v1/status")).status_code == 200


async def test_a_live_socket_is_not_taken_over(tmp_path: Path, nursery: trio.Nursery) -> None:
    api, app = make_served(tmp_path)
    await nursery.start(serve, app, api.socket)
    with pytest.raises(SocketInUse, match="already running"):
        await serve(app, api.socket)
    async with api.client() as client:  # the first one still answers
        assert (await client.get("/v1/status")).status_code == 200


async def test_refuses_to_replace_a_file_and_too_long_paths(tmp_path: Path) -> None:
    api, app = make_served(tmp_path)
    api.socket.write_text("not a socket")
    with pytest.raises(SocketInUse, match="not a socket"):
        await serve(app, api.socket)
    assert api.socket.read_text() == "not a socket"
    with pytest.raises(ValueError, match="too long"):
        await serve(app, tmp_path / ("x" * 120))


async def test_many_clients_at_once(tmp_path: Path, nursery: trio.Nursery) -> None:
    api, app = make_served(tmp_path)
    await nursery.start(partial(serve, app, api.socket))
    statuses: list[int] = []

    async def one() -> None:
        transport = httpx.AsyncHTTPTransport(uds=str(api.socket))
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            statuses.append((await client.get("/v1/status")).status_code)

    async with trio.open_nursery() as clients:
        for _ in range(50):
            clients.start_soon(one)
    assert statuses == [200] * 50
