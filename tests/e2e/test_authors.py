"""Two real daemons (render-only): node 2 tells who made an edit that came through node 1
- on its own watch stream, in the entity it serves and in its audit log."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from node.localmesh import LocalNode, start_mesh, stop_all, until

pytestmark = [pytest.mark.slow]

BASE = "/v1/workspaces/default/upstreams"
ROOT_ADMIN = {"node": "n1", "user": "root", "role": "admin"}


@contextmanager
def watching(node: LocalNode) -> Iterator[queue.Queue[dict[str, Any]]]:
    """The node's ``change`` events, read by a thread from its watch stream (opened before
    this returns: nothing made after is missed)."""
    events: queue.Queue[dict[str, Any]] = queue.Queue()
    opened = threading.Event()
    transport = httpx.HTTPTransport(uds=str(node.state / "api.sock"))
    client = httpx.Client(transport=transport, base_url="http://nxmesh", timeout=None)

    def read() -> None:
        try:
            with client.stream("GET", "/v1/watch") as stream:
                for line in stream.iter_lines():
                    event = json.loads(line)
                    if event["type"] == "hello":
                        opened.set()
                    elif event["type"] == "change":
                        events.put(event)
        except httpx.HTTPError:
            pass  # closed at the end of the test

    thread = threading.Thread(target=read, name=f"watch-{node.name}", daemon=True)
    thread.start()
    assert opened.wait(10), f"{node.name}'s watch stream did not open"
    try:
        yield events
    finally:
        client.close()
        thread.join(5)


def _next(events: queue.Queue[dict[str, Any]]) -> dict[str, Any]:
    try:
        return events.get(timeout=30)
    except queue.Empty:
        raise AssertionError("no change event within 30 s") from None


def test_node_2_tells_the_author_of_an_edit_made_on_node_1(tmp_path: Path) -> None:
    nodes = start_mesh(tmp_path, 2, extra=("--preset", "local", "--nginx", "render-only"))
    try:
        n1, n2 = nodes
        up = n1.api("POST", BASE, {"name": "app", "servers": [{"address": "127.0.0.1:9"}]})
        assert up["changed_by"] == ROOT_ADMIN
        until(lambda: bool(n2.api("GET", BASE, None)["items"]), "node 2 to hold the upstream")

        with watching(n2) as events:
            n1.api("PATCH", f"{BASE}/{up['id']}", {"keepalive": 4})
            change = _next(events)
            assert change["origin"] == "peer"
            assert (change["op"], change["id"], change["name"]) == ("updated", up["id"], "app")
            assert change["fields"] == ["keepalive"]
            assert change["node"] == "n1"
            assert change["changed_by"] == ROOT_ADMIN
            served = n2.api("GET", f"{BASE}/{up['id']}")
            assert served["changed_by"] == ROOT_ADMIN
            assert served["changed_at"] == change["changed_at"]

            n1.api("DELETE", f"{BASE}/{up['id']}")
            deleted = _next(events)
            assert (deleted["op"], deleted["name"], deleted["node"]) == ("deleted", "app", "n1")
            assert deleted["changed_by"] == ROOT_ADMIN

        log = n2.api("GET", "/v1/workspaces/default/audit")["items"]
        assert [(i["op"], i["changed_by"]["node"]) for i in log] == [
            ("deleted", "n1"),
            ("updated", "n1"),
            ("created", "n1"),
        ]
    finally:
        stop_all(nodes)
