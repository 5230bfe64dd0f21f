"""Fixtures: the API served for real on a Unix socket in tmp_path, and a client of it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from tests.api.support import Served, seed, start


@pytest.fixture
async def api(tmp_path: Path, nursery: trio.Nursery) -> Served:
    return await start(nursery, tmp_path)


@pytest.fixture
async def client(api: Served) -> AsyncIterator[httpx.AsyncClient]:
    async with api.client() as c:
        yield c


@pytest.fixture
async def ws(client: httpx.AsyncClient) -> str:
    """The id of a workspace 'default' (of organization 'acme')."""
    _, workspace = await seed(client)
    return workspace
