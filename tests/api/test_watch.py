"""The watch stream: what happens through the API (and what the daemon publishes) arrives
on every open stream as one JSON object per line."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import trio
import trio.testing

from tests.api.support import Served, seed, start

UP = {"name": "app", "servers": [{"address": "127.0.0.1:9001"}]}


async def next_event(lines: AsyncIterator[str], kind: str) -> dict[str, Any]:
    """The next event of type ``kind`` (others, such as heartbeats, are skipped)."""
    with trio.fail_after(10):
        async for line in lines:
            event = json.loads(line)
            if event["type"] == kind:
                return dict(event)
    raise AssertionError(f"the stream ended before a {kind!r} event")


async def test_a_change_made_through_the_api_appears_on_an_open_stream(
    api: Served, client: httpx.AsyncClient, ws: str
) -> None:
    async with api.client() as watcher, watcher.stream("GET", "/v1/watch") as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"] == "application/x-ndjson"
        lines = stream.aiter_lines()
        hello = await next_event(lines, "hello")
        assert hello["node"] == "node1"

        up = (await client.post(f"/v1/workspaces/{ws}/upstreams", json=UP)).json()
        change = await next_event(lines, "change")
        assert change["op"] == "created"
        assert change["id"] == up["id"]
        assert change["resource"] == "upstreams"
        assert change["workspace"] == ws
        assert change["document"] == f"workspace:{ws}"
        assert change["seq"] > hello["seq"]

        await client.patch(f"/v1/workspaces/{ws}/upstreams/{up['id']}", json={"keepalive": 8})
        change = await next_event(lines, "change")
        assert (change["op"], change["fields"]) == ("updated", ["keepalive"])

        await client.put("/v1/nodes/node2/labels", json={"labels": {"zone": "z"}})
        member = await next_event(lines, "member")
        assert (member["op"], member["node"]) == ("labels", "node2")

        # what the daemon observes (a peer's update) comes through the same hub
        api.services.events.publish({"type": "document", "document": "mesh", "origin": "peer"})
        assert (await next_event(lines, "document"))["origin"] == "peer"

        await client.delete(f"/v1/workspaces/{ws}/upstreams/{up['id']}")
        change = await next_event(lines, "change")
        assert (change["op"], change["id"]) == ("deleted", up["id"])


async def test_an_unchanged_put_announces_nothing(
    api: Served, client: httpx.AsyncClient, ws: str
) -> None:
    url = f"/v1/workspaces/{ws}/upstreams/app"
    await client.put(url, json=UP)
    async with api.client() as watcher, watcher.stream("GET", "/v1/watch") as stream:
        lines = stream.aiter_lines()
        await next_event(lines, "hello")
        await client.put(url, json=UP)  # nothing to write
        await client.put(url, json={**UP, "keepalive": 2})
        change = await next_event(lines, "change")
        assert change["fields"] == ["keepalive"]


async def test_idle_streams_get_heartbeats_and_slow_watchers_are_dropped(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    api = await start(nursery, tmp_path, heartbeat=0.05, buffer=4)
    hub = api.services.events
    async with api.client() as client:
        await seed(client)
        async with client.stream("GET", "/v1/watch") as stream:
            lines = stream.aiter_lines()
            await next_event(lines, "hello")
            assert (await next_event(lines, "heartbeat"))["type"] == "heartbeat"
            for i in range(20):  # far more than the watcher's buffer, before it reads any
                hub.publish({"type": "document", "n": i})
            seen = [json.loads(line) async for line in lines]
        assert seen[-1]["type"] == "overflow"
        got = [e["n"] for e in seen if e["type"] == "document"]
        # the buffer's 4, plus the one handed straight to the stream if it was waiting
        assert got in ([0, 1, 2, 3], [0, 1, 2, 3, 4])
        assert hub.watchers == 0


async def test_a_closed_stream_unsubscribes(api: Served, client: httpx.AsyncClient) -> None:
    hub = api.services.events
    async with client.stream("GET", "/v1/watch") as stream:
        await next_event(stream.aiter_lines(), "hello")
        assert hub.watchers == 1
    with trio.fail_after(5):
        while hub.watchers:
            await trio.testing.wait_all_tasks_blocked(0.01)


async def test_a_burst_arrives_whole_and_in_order(api: Served) -> None:
    hub = api.services.events
    async with api.client() as watcher, watcher.stream("GET", "/v1/watch") as stream:
        lines = stream.aiter_lines()
        await next_event(lines, "hello")
        for i in range(600):  # more than one chunk's worth, fewer than the buffer
            hub.publish({"type": "member", "node": f"n{i}"})
        with trio.fail_after(10):
            got = [json.loads(await anext(lines)) for _ in range(600)]
        assert [e["node"] for e in got] == [f"n{i}" for i in range(600)]
        assert [e["seq"] for e in got] == sorted(e["seq"] for e in got)
