"""What the console offers follows the caller's role: a viewer gets no edit actions, and
a write the API refuses (403) takes them away with the API's reason shown. The roles come
from the API's status, so these run on the canned API (a test runs as root, which a real
daemon always makes admin)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC
from pathlib import Path

import pytest
from textual.widgets import Input

from tests.support.asyncio_run import run_asyncio
from tests.tui.fake_api import FakeApi
from tests.tui.fleet_data import EVENTS, NOW, routes
from tests.tui.helpers import wait_for
from tui.app import NxMeshApp
from tui.roles import Role
from tui.screens.entity_view import EntityViewScreen
from tui.screens.vhost_form import VhostFormScreen
from tui.screens.vhosts import VhostsScreen


def actions(app: NxMeshApp) -> set[str]:
    """The actions the footer offers on the current screen."""
    return {b.binding.action for b in app.screen.active_bindings.values() if b.binding.show}


@pytest.fixture
def viewer(tmp_path: Path) -> Iterator[FakeApi]:
    with FakeApi(tmp_path, routes("viewer"), EVENTS) as api:
        yield api


@pytest.fixture
def refused_operator(tmp_path: Path) -> Iterator[FakeApi]:
    with FakeApi(tmp_path, routes("operator", refuse_writes=True), EVENTS) as api:
        yield api


def test_a_viewer_sees_no_edit_actions(viewer: FakeApi) -> None:
    async def scenario() -> None:
        app = NxMeshApp(viewer.socket.parent, clock=lambda: NOW, timezone=UTC)
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: app.role == Role.viewer, "the role read")
            assert {"invite", "revoke"}.isdisjoint(actions(app))
            assert "Invite a node" not in {c.title for c in app.get_system_commands(app.screen)}
            await pilot.press("2")
            screen = app.screen
            assert isinstance(screen, VhostsScreen)
            await wait_for(pilot, lambda: screen.loaded, "the virtual hosts listed")
            assert {"new", "edit", "delete"}.isdisjoint(actions(app))
            await pilot.press("n", "e", "d")
            assert app.screen is screen  # none of them did anything
            await pilot.press("enter")  # a viewer opens a read-only view instead
            await wait_for(pilot, lambda: isinstance(app.screen, EntityViewScreen), "the view")

    run_asyncio(scenario())
    assert [r for r in viewer.requests if r[0] != "GET"] == []


def test_a_refused_write_shows_why_and_hides_edit_actions(refused_operator: FakeApi) -> None:
    async def scenario() -> None:
        app = NxMeshApp(refused_operator.socket.parent, clock=lambda: NOW, timezone=UTC)
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: app.role == Role.operator, "the role read")
            await pilot.press("2")
            screen = app.screen
            assert isinstance(screen, VhostsScreen)
            await wait_for(pilot, lambda: screen.loaded, "the virtual hosts listed")
            assert {"new", "edit", "delete"} <= actions(app)
            await pilot.press("n")
            form = app.screen
            assert isinstance(form, VhostFormScreen)
            form.query_one("#name", Input).value = "web"
            form.query_one("#server_names", Input).value = "web.example.test"
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: "operator role" in form.form_error, "the reason")
            assert app.role == Role.viewer
            await pilot.press("escape")
            assert app.screen is screen
            assert {"new", "edit", "delete"}.isdisjoint(actions(app))

    run_asyncio(scenario())


@pytest.fixture
def admin(tmp_path: Path) -> Iterator[FakeApi]:
    with FakeApi(tmp_path, routes("admin"), EVENTS) as api:
        yield api


def test_the_palette_offers_what_an_admin_may_do(admin: FakeApi) -> None:
    async def scenario() -> None:
        app = NxMeshApp(admin.socket.parent, clock=lambda: NOW, timezone=UTC)
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: app.role == Role.admin and app.workspace is not None,
                           "the role and workspace read")  # fmt: skip
            titles = {c.title for c in app.get_system_commands(app.screen)}
            assert {"Invite a node", "Revoke n2", "Revoke n4", "Node n1", "Go to Events"} <= titles
            # Not the node the console talks to, not one already revoked, not the
            # workspace already shown.
            assert {"Revoke n1", "Revoke n5", "Workspace default"}.isdisjoint(titles)
            assert {"invite", "revoke"} <= actions(app)

    run_asyncio(scenario())
