"""The console against real daemons (``nxmesh run`` child processes, render-only): it lists
the real members, its forms create, edit and delete through the API (and the nodes render
what they made), it puts the API's field errors beside the fields, it shows a killed
member go suspect and dead within a second of the daemon saying so, and it reconnects by
itself when the daemon restarts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Input, Select, Static

from node.localmesh import LocalNode, NodeProcessError, start_mesh, stop_all, until
from tests.support.asyncio_run import run_asyncio
from tests.tui.helpers import table_rows, wait_for
from tui.app import NxMeshApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.entity_list import EntityListScreen
from tui.screens.node_detail import NodeDetailScreen
from tui.screens.vhost_form import VhostFormScreen
from tui.screens.vhosts import VhostsScreen
from tui.widgets.config_viewer import ConfigViewer

pytestmark = pytest.mark.slow

RENDER_ONLY = ("--preset", "local", "--nginx", "render-only")
SIZE = (120, 32)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[LocalNode]]:
    """Two real nodes and one upstream (``app``), shared by the tests that do not kill."""
    nodes = start_mesh(tmp_path_factory.mktemp("mesh"), 2, extra=RENDER_ONLY)
    try:
        nodes[0].api(
            "PUT",
            "/v1/workspaces/default/upstreams/app",
            {"name": "app", "servers": [{"address": "127.0.0.1:9001"}]},
        )
        yield nodes
    finally:
        stop_all(nodes)


def members_on_screen(app: NxMeshApp) -> dict[str, list[str]]:
    table = app.screen.query_one("#members", DataTable)
    return {row[0]: row for row in table_rows(table)}


def text_of(app: NxMeshApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).content)


def vhosts_named(node: LocalNode, name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = node.api("GET", f"/v1/workspaces/default/vhosts?name={name}")[
        "items"
    ]
    return items


def rendered(node: LocalNode, server_name: str) -> list[Path]:
    """The node's rendered vhost files that answer ``server_name``."""
    files = (node.state / "nginx" / "conf" / "http.d").glob("*/vhosts/*.conf")
    return [f for f in files if f"server_name {server_name}" in f.read_text()]


async def open_vhost_form(app: NxMeshApp, pilot: Any) -> VhostFormScreen:
    await pilot.press("2")
    await wait_for(pilot, lambda: isinstance(app.screen, VhostsScreen) and app.screen.loaded,
                   "the virtual hosts listed")  # fmt: skip
    await pilot.press("n")
    await wait_for(pilot, lambda: isinstance(app.screen, VhostFormScreen), "the form")
    form = app.screen
    assert isinstance(form, VhostFormScreen)
    select: Select[str] = form.query_one("#upstream", Select)
    await wait_for(pilot, lambda: select.value == "app", "the upstream offered and chosen")
    return form


async def type_into(pilot: Any, form: VhostFormScreen, field: str, text: str) -> None:
    widget = form.query_one(f"#{field}", Input)
    widget.focus()
    widget.value = ""
    await pilot.press(*text)


def test_the_overview_lists_the_real_members(mesh: list[LocalNode]) -> None:
    n1, _ = mesh
    expected = {m["name"]: m for m in n1.api("GET", "/v1/nodes")["items"]}

    async def scenario() -> None:
        app = NxMeshApp(n1.state)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: set(members_on_screen(app)) == set(expected),
                           "both members on screen")  # fmt: skip
            await wait_for(pilot, lambda: "2/2 nodes on state" in text_of(app, "#convergence"),
                           "the convergence line")  # fmt: skip
            rows = members_on_screen(app)
            for name, m in expected.items():
                assert rows[name][1] == "alive"
                assert rows[name][4] == m["address"]
                assert rows[name][8] == m["key"]
            assert text_of(app, "#link-banner").startswith("● on n1 as admin")

    run_asyncio(scenario())


def test_another_nodes_configuration_is_shown(mesh: list[LocalNode]) -> None:
    """n2's report and files, read over the mesh through n1's API."""
    n1, n2 = mesh
    tree = n2.state / "nginx" / "conf"
    until(lambda: (tree / "nginx.conf").exists(), "n2 to apply a tree")

    async def scenario() -> None:
        app = NxMeshApp(n1.state)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: "n2" in members_on_screen(app), "n2 listed")
            app.open_node("n2")
            await wait_for(pilot, lambda: isinstance(app.screen, NodeDetailScreen)
                           and app.screen.loaded, "n2's report and files")  # fmt: skip
            viewer = app.screen.query_one(ConfigViewer)
            assert viewer.paths[0] == "nginx.conf"
            await wait_for(pilot, lambda: viewer.shown == "nginx.conf", "nginx.conf shown")
            shown = str(app.screen.query_one("#config-text", Static).content)
            on_disk = (tree / "nginx.conf").read_text()
            assert shown.strip() == on_disk.strip()
            report = text_of(app, "#node-report")
            assert report.startswith("last apply: ok")
            assert "datagrams in" in report

    run_asyncio(scenario())


def test_a_vhost_created_in_the_form_is_in_the_api_and_rendered(mesh: list[LocalNode]) -> None:
    n1, n2 = mesh

    async def scenario() -> None:
        app = NxMeshApp(n1.state)
        async with app.run_test(size=SIZE) as pilot:
            form = await open_vhost_form(app, pilot)
            await type_into(pilot, form, "name", "tui-shop")
            await type_into(pilot, form, "server_names", "tuishop.example.test")
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: isinstance(app.screen, VhostsScreen), "the form saved")
            table = app.screen.query_one(DataTable)
            await wait_for(pilot, lambda: any(r[0] == "tui-shop" for r in table_rows(table)),
                           "the new virtual host in the list")  # fmt: skip

    run_asyncio(scenario())
    (created,) = vhosts_named(n1, "tui-shop")
    assert created["server_names"] == ["tuishop.example.test"]
    assert created["locations"][0]["upstream"] == "app"
    until(lambda: len(vhosts_named(n2, "tui-shop")) == 1, "n2 to replicate it", 15)
    until(lambda: bool(rendered(n1, "tuishop.example.test")), "n1 to render it", 15)
    (conf,) = rendered(n1, "tuishop.example.test")
    assert conf.name == f"{created['id']}.conf"


def test_api_field_errors_are_shown_beside_their_fields(mesh: list[LocalNode]) -> None:
    n1, _ = mesh
    body = {"name": "tui-bad", "server_names": ["bad_host!"],
            "locations": [{"path": "no-slash", "upstream": "app"}]}  # fmt: skip
    with pytest.raises(NodeProcessError) as refused:  # what the API itself says
        n1.api("POST", "/v1/workspaces/default/vhosts", body)
    assert "422" in str(refused.value)

    async def scenario() -> None:
        app = NxMeshApp(n1.state)
        async with app.run_test(size=SIZE) as pilot:
            form = await open_vhost_form(app, pilot)
            await type_into(pilot, form, "name", "tui-bad")
            await type_into(pilot, form, "server_names", "bad_host!")
            await type_into(pilot, form, "path", "no-slash")
            await pilot.press("ctrl+s")
            names = form.field("server_names")
            await wait_for(pilot, lambda: bool(names.error_text), "the server names' error")
            assert isinstance(app.screen, VhostFormScreen)  # still open, nothing saved
            assert "bad_host!" in str(refused.value)
            for reason in _reasons(str(refused.value), "server_names[0]"):
                assert reason in names.error_text
            for reason in _reasons(str(refused.value), "locations[0].path"):
                assert reason in form.field("path").error_text
            assert form.field("name").error_text == ""
            assert form.form_error.startswith("Not saved")

    run_asyncio(scenario())
    assert vhosts_named(n1, "tui-bad") == []


def _reasons(problem: str, field: str) -> list[str]:
    """The reasons the API gave for ``field`` (from the raw problem text)."""
    import json

    document = json.loads(problem.split(" 422 ", 1)[1])
    reasons = [e["reason"] for e in document["errors"] if e["field"] == field]
    assert reasons, f"the API named no error for {field}: {document}"
    return reasons


def test_a_vhost_is_edited_and_deleted_after_confirmation(mesh: list[LocalNode]) -> None:
    n1, _ = mesh
    created = n1.api("POST", "/v1/workspaces/default/vhosts", {
        "name": "tui-edit", "server_names": ["old.example.test"],
        "locations": [{"path": "/", "upstream": "app"}]})  # fmt: skip

    async def scenario() -> None:
        app = NxMeshApp(n1.state)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("2")
            screen = app.screen
            assert isinstance(screen, EntityListScreen)
            await wait_for(pilot, lambda: screen.loaded and created["id"] in screen.items,
                           "the virtual host listed")  # fmt: skip
            await pilot.press("slash", *"tui-edit", "enter", "e")
            form = app.screen
            assert isinstance(form, VhostFormScreen)
            assert form.query_one("#name", Input).value == "tui-edit"
            await type_into(pilot, form, "server_names", "new.example.test")
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: app.screen is screen, "the edit saved")
            (edited,) = await asyncio.to_thread(vhosts_named, n1, "tui-edit")
            assert edited["server_names"] == ["new.example.test"]
            assert edited["locations"] == created["locations"]  # what the form left alone
            await pilot.press("d")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
            await pilot.press("y")
            await wait_for(pilot, lambda: created["id"] not in screen.items, "the row gone")

    run_asyncio(scenario())
    assert vhosts_named(n1, "tui-edit") == []
    with pytest.raises(NodeProcessError, match="404"):
        n1.api("GET", f"/v1/workspaces/default/vhosts/{created['id']}")


def test_a_killed_member_turns_suspect_then_dead_and_can_be_revoked(tmp_path: Path) -> None:
    nodes = start_mesh(tmp_path, 2, extra=RENDER_ONLY)
    try:
        n1, n2 = nodes

        async def scenario() -> None:
            app = NxMeshApp(n1.state)
            async with app.run_test(size=SIZE) as pilot:

                def n2_state() -> str:
                    return members_on_screen(app).get("n2", ["", "absent"])[1]

                await wait_for(pilot, lambda: n2_state() == "alive", "n2 alive on screen")
                n2.kill9()
                await wait_for(pilot, lambda: n2_state() in ("suspect", "dead"),
                               "n2 suspect on screen", 20)  # fmt: skip
                shown_at = time.time()
                told = [e for e in app.events if e.node == "n2" and e.kind in ("suspect", "dead")]
                assert told, "the watch stream said nothing about n2"
                daemon_at = float(told[0].raw["at"])
                assert shown_at - daemon_at < 1.0, "the screen lagged the daemon by over 1 s"
                await wait_for(pilot, lambda: n2_state() == "dead", "n2 dead on screen", 30)
                assert "1 dead: n2" in text_of(app, "#convergence")

                table = app.screen.query_one("#members", DataTable)
                table.move_cursor(row=table.get_row_index("n2"))
                await pilot.press("r")
                await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
                await pilot.press("y")
                await wait_for(pilot, lambda: n2_state() == "revoked", "n2 revoked on screen")

        run_asyncio(scenario())
        (n2_seen,) = [m for m in n1.api("GET", "/v1/nodes")["items"] if m["name"] == "n2"]
        assert n2_seen["state"] == "revoked"
    finally:
        stop_all(nodes)


def test_the_console_reconnects_when_the_daemon_restarts(tmp_path: Path) -> None:
    """``kill -9`` and a fresh start: the console says why it lost the daemon, keeps
    trying, and picks the new daemon up by itself."""
    nodes = start_mesh(tmp_path, 1, extra=RENDER_ONLY)
    try:
        (n1,) = nodes

        async def scenario() -> None:
            app = NxMeshApp(n1.state)
            async with app.run_test(size=SIZE) as pilot:
                banner = app.screen.query_one("#link-banner", Static)
                await wait_for(pilot, lambda: app.link.up and "n1" in members_on_screen(app),
                               "connected, n1 listed")  # fmt: skip
                await asyncio.to_thread(n1.kill9)  # its socket file stays behind
                await wait_for(pilot, lambda: "the daemon is not running: nothing answers on"
                               in text_of(app, "#link-banner"), "the reason on screen")  # fmt: skip
                assert banner.has_class("-down")
                assert text_of(app, "#link-banner").endswith("- retrying")
                await asyncio.to_thread(n1.start)
                await wait_for(pilot, lambda: banner.has_class("-up"), "the link up again", 15)
                assert text_of(app, "#link-banner").startswith("● on n1")
                lines = [e.text for e in app.events if e.kind == "link"]
                assert lines[0] == "connected to n1"
                assert lines[1].startswith("connection lost: ")
                assert lines[-1] == "connected to n1"
                await wait_for(pilot, lambda: members_on_screen(app).get("n1", [""])[1:2]
                               == ["alive"], "n1 listed alive again")  # fmt: skip

        run_asyncio(scenario())
    finally:
        stop_all(nodes)
