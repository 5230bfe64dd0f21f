"""Who made an edit: the caller's uid (real SO_PEERCRED credentials from forked children
that drop to other uids, as root) becomes ``changed_by`` in the entity, the ``change``
event and the audit log; peers' audit entries become ``change`` events on this node."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
from pycrdt import Doc

from crdt.audit import record
from crdt.documents import workspace_document
from crdt.schema import Author, Stamp
from node.api.access import AccessPolicy, Role
from node.api.audit import AuditFeed
from node.api.server import serve
from node.api.stamps import user_name
from tests.api.peer import request_as
from tests.api.support import Served, make_served
from tests.api.test_access import seed_directly

ROOT = os.geteuid() == 0
GROUP = 40000
NAMELESS = 40012
"""A uid with no entry in /etc/passwd: shown as ``uid 40012``."""
UP = {"name": "app", "servers": [{"address": "127.0.0.1:9001"}]}


def _named() -> tuple[int, str]:
    """A uid that has a login name (a system user as root, else this process's user)."""
    if ROOT:
        entry = pwd.getpwnam("daemon")
        return entry.pw_uid, entry.pw_name
    return os.getuid(), user_name(os.getuid())


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory other uids can traverse (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="nxmesh-authors-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def _served(nursery: trio.Nursery, directory: Path) -> Served:
    uid, _ = _named()
    users = {uid: Role.operator, NAMELESS: Role.operator, NAMELESS + 1: Role.viewer}
    policy = AccessPolicy(users=users, daemon_uid=os.getuid() if ROOT else -1)
    api, app = make_served(directory, policy=policy)
    await nursery.start(partial(serve, app, api.socket, group=GROUP if ROOT else None))
    return api


async def test_an_edit_names_the_caller_in_the_entity_the_event_and_the_log(
    shared_dir: Path, nursery: trio.Nursery
) -> None:
    api = await _served(nursery, shared_dir)
    ws = seed_directly(api)
    uid, name = _named()
    gid = GROUP if ROOT else os.getgid()
    base = f"/v1/workspaces/{ws}/upstreams"
    send, receive = trio.open_memory_channel[dict[str, Any]](16)

    async def watch(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with api.client() as client, client.stream("GET", "/v1/watch") as stream:
            task_status.started()
            async for line in stream.aiter_lines():
                event = json.loads(line)
                if event["type"] == "change":
                    await send.send(event)

    async with trio.open_nursery() as watching:
        await watching.start(watch)
        made = await request_as(api.socket, uid, gid, "POST", base, UP)
        assert made.status == 201, made.body
        me = {"node": "node1", "user": name, "role": "operator"}
        assert made.body["changed_by"] == me
        at = datetime.fromisoformat(made.body["changed_at"])
        assert abs(datetime.now(UTC) - at) < timedelta(minutes=1)
        with trio.fail_after(10):
            event = await receive.receive()
        assert (event["op"], event["id"], event["name"]) == ("created", made.body["id"], "app")
        assert event["changed_by"] == me
        assert event["changed_at"] == made.body["changed_at"]

        if ROOT:  # a uid without a name: "uid N"
            url = f"{base}/{made.body['id']}"
            other = await request_as(api.socket, NAMELESS, gid, "PATCH", url, {"keepalive": 4})
            assert other.status == 200, other.body
            nameless = {"node": "node1", "user": f"uid {NAMELESS}", "role": "operator"}
            assert other.body["changed_by"] == nameless
            with trio.fail_after(10):
                assert (await receive.receive())["changed_by"] == nameless
            gone = await request_as(api.socket, NAMELESS, gid, "DELETE", url)
            assert gone.status == 204
            with trio.fail_after(10):
                deleted = await receive.receive()
            assert (deleted["op"], deleted["name"]) == ("deleted", "app")
            assert deleted["changed_by"] == nameless
        watching.cancel_scope.cancel()

    viewer = NAMELESS + 1 if ROOT else uid
    log = await request_as(api.socket, viewer, gid, "GET", f"/v1/workspaces/{ws}/audit")
    assert log.status == 200, log.body
    ops = [(i["op"], i["changed_by"]["user"]) for i in log.body["items"]]
    if ROOT:
        nameless_user = f"uid {NAMELESS}"
        assert ops == [("deleted", nameless_user), ("updated", nameless_user), ("created", name)]
        assert log.body["items"][0]["name"] == "app"
    else:
        assert ops == [("created", name)]


async def test_the_stamp_is_read_only_in_input(api: Served, ws: str) -> None:
    async with api.client() as client:
        url = f"/v1/workspaces/{ws}/upstreams/app"
        first = (await client.put(url, json=UP)).json()
        echo = await client.put(url, json=first)  # a GET echoed back: nothing to write
        assert echo.status_code == 200
        assert echo.json() == first
        forged = {"changed_by": {"node": "x", "user": "mallory", "role": "admin"}}
        r = await client.patch(url, json=forged)
        assert r.status_code == 200
        assert r.json()["changed_by"] == first["changed_by"]
        r = await client.patch(url, json={**forged, "keepalive": 3})
        assert r.json()["changed_by"]["user"] != "mallory"


async def test_the_audit_endpoints_filter_and_refuse_unknown_filters(api: Served, ws: str) -> None:
    async with api.client() as client:
        up = (await client.post(f"/v1/workspaces/{ws}/upstreams", json=UP)).json()
        await client.patch(f"/v1/workspaces/{ws}/upstreams/{up['id']}", json={"keepalive": 2})
        mesh = (await client.get("/v1/audit")).json()["items"]
        assert [(i["op"], i["resource"]) for i in mesh] == [
            ("created", "workspaces"),
            ("created", "organizations"),
        ]
        listed = await client.get(f"/v1/workspaces/{ws}/audit", params={"resource": "upstreams"})
        assert [i["op"] for i in listed.json()["items"]] == ["updated", "created"]
        assert listed.json()["items"][0]["fields"] == ["keepalive"]
        assert (
            await client.get(f"/v1/workspaces/{ws}/audit", params={"user": "nobody-else"})
        ).json()["items"] == []
        bad = await client.get(f"/v1/workspaces/{ws}/audit", params={"who": "x"})
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "query.who"
        missing = await client.get("/v1/workspaces/nope/audit")
        assert missing.status_code == 404


# ---------------------------------------------------------------- peers' edits


def _stamp(node: str, user: str, at: datetime | None = None) -> Stamp:
    return Stamp(Author(node=node, user=user, role="operator"), at or datetime.now(UTC))


def _sync(src: Doc[Any], dst: Doc[Any]) -> None:
    dst.apply_update(src.get_update(dst.get_state()))


def test_entries_from_peers_become_change_events_once() -> None:
    theirs: Doc[Any] = Doc()
    mine: Doc[Any] = Doc()
    record(theirs, _stamp("n1", "alice"), "created", "virtual_hosts", "v1", "shop")
    _sync(theirs, mine)
    feed = AuditFeed("n2")
    feed.sync({"workspace:w": mine})  # what it held already is not news
    record(theirs, _stamp("n1", "alice"), "updated", "virtual_hosts", "v1", "shop", ["name"])
    record(mine, _stamp("n2", "bob"), "updated", "upstreams", "u1", "app")  # through n2 itself
    _sync(theirs, mine)
    told = feed.changes("workspace:w", mine)
    assert [(e["origin"], e["node"], e["resource"], e["op"], e["fields"]) for e in told] == [
        ("peer", "n1", "vhosts", "updated", ["name"])
    ]
    assert told[0]["changed_by"] == {"node": "n1", "user": "alice", "role": "operator"}
    assert told[0]["workspace"] == "w"
    assert feed.changes("workspace:w", mine) == []  # told once


def test_the_first_fill_of_an_empty_document_is_history_but_for_what_is_newer() -> None:
    theirs: Doc[Any] = Doc()
    mine: Doc[Any] = Doc()
    feed = AuditFeed("n2")
    feed.sync({"mesh": mine})
    old = datetime.now(UTC) - timedelta(hours=1)
    record(theirs, _stamp("n1", "alice", old), "created", "organizations", "o1", "acme")
    record(theirs, _stamp("n1", "alice"), "created", "workspaces", "w1", "prod")
    _sync(theirs, mine)
    assert [e["name"] for e in feed.changes("mesh", mine)] == ["prod"]
    late = _stamp("n1", "alice", old)  # after the first fill, every new entry is news
    record(theirs, late, "deleted", "organizations", "o1", "acme")
    _sync(theirs, mine)
    assert [e["op"] for e in feed.changes("mesh", mine)] == ["deleted"]
    feed.sync({})  # no longer replicated: forgotten
    assert feed.changes("mesh", mine) == []


async def test_a_peers_extra_stamp_keys_do_not_reach_the_audit_filters(
    api: Served, ws: str
) -> None:
    persisted = api.services.document(workspace_document(ws))
    assert persisted is not None
    who = {"node": "n9", "user": "mallory", "role": "admin", "id": "v-other"}
    forged = Stamp(Author.model_validate(who), datetime.now(UTC))

    def write(doc: Doc[Any]) -> None:
        record(doc, forged, "updated", "virtual_hosts", "v-real", "shop")

    persisted.commit(write)
    async with api.client() as client:
        base = f"/v1/workspaces/{ws}/audit"
        real = (await client.get(base, params={"id": "v-real"})).json()["items"]
        assert [(i["id"], i["changed_by"]["user"]) for i in real] == [("v-real", "mallory")]
        assert (await client.get(base, params={"id": "v-other"})).json()["items"] == []
