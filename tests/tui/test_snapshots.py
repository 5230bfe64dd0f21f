"""Snapshots of every screen at 80x24 and 160x48 (pytest-textual-snapshot; files under
``__snapshots__``). The data comes from a canned API (fake_api.py) so the pictures are
the same on every run; what the screens do is tested against real daemons elsewhere.

Update after a deliberate change: ``uv run pytest tests/tui/test_snapshots.py
--snapshot-update`` - and look at the pictures (the report pytest prints) before
committing them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import OptionList

from tests.tui.fake_api import FakeApi
from tests.tui.fleet_data import API, EVENT_LINES, EVENTS, NOW, routes
from tests.tui.helpers import wait_for
from tui.app import NxMeshApp
from tui.screens.certificates import CertificatesScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.entity_list import EntityListScreen
from tui.screens.events import EventsScreen
from tui.screens.form_base import FormScreen
from tui.screens.invite import InviteScreen
from tui.screens.node_detail import NodeDetailScreen
from tui.screens.upstream_form import UpstreamFormScreen
from tui.screens.upstreams import UpstreamsScreen
from tui.screens.vhost_form import VhostFormScreen
from tui.screens.vhosts import VhostsScreen
from tui.widgets.config_viewer import ConfigViewer

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((160, 48), id="160x48")]
SnapCompare = Callable[..., bool]
Steps = Callable[[Pilot[Any]], Awaitable[None]]


def console(state_dir: Path, theme: str = "textual-dark") -> NxMeshApp:
    return NxMeshApp(state_dir, clock=lambda: NOW, timezone=UTC, theme=theme)


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[Path]:
    with FakeApi(tmp_path, routes(), EVENTS):
        yield tmp_path


@pytest.fixture
def fake_viewer(tmp_path: Path) -> Iterator[Path]:
    with FakeApi(tmp_path, routes("viewer"), EVENTS):
        yield tmp_path


def _options(pilot: Pilot[Any]) -> list[str]:
    found = pilot.app.screen.query("#config-files")
    if not found:
        return []
    files = found.first()
    assert isinstance(files, OptionList)
    return [str(files.get_option_at_index(i).prompt) for i in range(files.option_count)]


def _app(pilot: Pilot[Any]) -> NxMeshApp:
    app = pilot.app
    assert isinstance(app, NxMeshApp)
    return app


def shown(pilot: Pilot[Any], selector: str) -> str:
    """The text of the first widget matching ``selector`` on the current screen."""
    found = pilot.app.screen.query(selector)
    return str(getattr(found.first(), "content", "")) if found else ""


async def settled(pilot: Pilot[Any]) -> None:
    """Every event of the canned stream logged (plus the connection line), nothing being
    re-read, and the overview showing it all: the quarantined unit by name, the workspace."""
    app = _app(pilot)
    await wait_for(
        pilot,
        lambda: (
            len(app.events) == EVENT_LINES
            and app.fleet_loaded
            and f"vhosts/{API}" in app.names
            and not app.refreshing
            and "api - certificate" in shown(pilot, "#convergence")
            and "workspace default" in shown(pilot, "#link-banner")
            and "n1" in shown(pilot, "#recent-events")
        ),
        "the canned fleet and its events on screen",
    )


def go(*keys: str, until: Callable[[Pilot[Any]], bool] | None = None) -> Steps:
    """Settle, press ``keys``, then wait until the screen they lead to has loaded."""

    async def steps(pilot: Pilot[Any]) -> None:
        await settled(pilot)
        await pilot.press(*keys)
        app = _app(pilot)

        def ready() -> bool:
            screen = app.screen
            if isinstance(screen, EntityListScreen) and not screen.loaded:
                return False
            if isinstance(screen, FormScreen) and screen.saving:
                return False
            return until is None or until(pilot)

        await wait_for(pilot, ready, f"the screen after {keys}")

    return steps


def on(screen: type[Any], text: str = "", selector: str = "#list-title") -> Callable[..., bool]:
    """A ``go(until=...)`` condition: that screen is up and ``selector`` shows ``text``."""

    def check(pilot: Pilot[Any]) -> bool:
        return isinstance(pilot.app.screen, screen) and text in shown(pilot, selector)

    return check


@pytest.mark.parametrize("size", SIZES)
def test_overview(snap_compare: SnapCompare, fake: Path, size: tuple[int, int]) -> None:
    assert snap_compare(console(fake), terminal_size=size, run_before=settled)


def test_overview_light_theme(snap_compare: SnapCompare, fake: Path) -> None:
    app = console(fake, theme="textual-light")
    assert snap_compare(app, terminal_size=(80, 24), run_before=settled)


@pytest.mark.parametrize("size", SIZES)
def test_virtual_hosts(snap_compare: SnapCompare, fake: Path, size: tuple[int, int]) -> None:
    assert snap_compare(
        console(fake),
        terminal_size=size,
        run_before=go("2", until=on(VhostsScreen, "3 virtual hosts")),
    )


@pytest.mark.parametrize("size", SIZES)
def test_upstreams(snap_compare: SnapCompare, fake: Path, size: tuple[int, int]) -> None:
    assert snap_compare(
        console(fake),
        terminal_size=size,
        run_before=go("3", until=on(UpstreamsScreen, "2 upstreams")),
    )


@pytest.mark.parametrize("size", SIZES)
def test_certificates(snap_compare: SnapCompare, fake: Path, size: tuple[int, int]) -> None:
    assert snap_compare(
        console(fake),
        terminal_size=size,
        run_before=go("4", until=on(CertificatesScreen, "4 certificates")),
    )


@pytest.mark.parametrize("size", SIZES)
def test_events(snap_compare: SnapCompare, fake: Path, size: tuple[int, int]) -> None:
    assert snap_compare(
        console(fake),
        terminal_size=size,
        run_before=go("5", until=on(EventsScreen, f"{EVENT_LINES} events")),
    )


def detail_loaded(*files: str) -> Callable[[Pilot[Any]], bool]:
    """A ``go(until=...)`` condition: the node detail shows its report, its file list
    (``files`` among the labels) and the first file's content."""

    def check(pilot: Pilot[Any]) -> bool:
        screen = pilot.app.screen
        if not isinstance(screen, NodeDetailScreen) or not screen.loaded:
            return False
        viewer = screen.query_one(ConfigViewer)
        return all(f in _options(pilot) for f in files) and (
            not viewer.paths or viewer.shown == viewer.paths[0]
        )

    return check


@pytest.mark.parametrize("size", SIZES)
def test_node_detail_of_this_node(
    snap_compare: SnapCompare, fake: Path, size: tuple[int, int]
) -> None:
    until = detail_loaded("default: vhost shop")
    assert snap_compare(console(fake), terminal_size=size, run_before=go("enter", until=until))


def test_node_detail_of_another_node(snap_compare: SnapCompare, fake: Path) -> None:
    """Its report and files come over the mesh; parts of them are left out."""
    until = detail_loaded("default: vhost shop")
    assert snap_compare(
        console(fake), terminal_size=(160, 48), run_before=go("down", "enter", until=until)
    )


def test_node_detail_of_an_unreachable_node(snap_compare: SnapCompare, fake: Path) -> None:
    assert snap_compare(
        console(fake),
        terminal_size=(80, 24),
        run_before=go("down", "down", "down", "enter", until=detail_loaded()),
    )


@pytest.mark.parametrize("size", SIZES)
def test_vhost_form_with_a_field_error(
    snap_compare: SnapCompare, fake: Path, size: tuple[int, int]
) -> None:
    async def steps(pilot: Pilot[Any]) -> None:
        await go("2", "n", until=on(VhostFormScreen, "New", "#form-title"))(pilot)
        await pilot.press(*"web", "tab", *"bad host", "ctrl+s")
        screen = pilot.app.screen
        assert isinstance(screen, FormScreen)
        await wait_for(pilot, lambda: "spaces" in screen.field("server_names").error_text,
                       "the API's message beside the server names")  # fmt: skip
        screen.set_focus(None)  # no blinking cursor in the picture

    assert snap_compare(console(fake), terminal_size=size, run_before=steps)


@pytest.mark.parametrize("size", SIZES)
def test_upstream_edit_form(snap_compare: SnapCompare, fake: Path, size: tuple[int, int]) -> None:
    async def steps(pilot: Pilot[Any]) -> None:
        await go("3", "down", "e", until=on(UpstreamFormScreen, "app", "#form-title"))(pilot)
        pilot.app.screen.set_focus(None)

    assert snap_compare(console(fake), terminal_size=size, run_before=steps)


@pytest.mark.parametrize("size", SIZES)
def test_invite(snap_compare: SnapCompare, fake: Path, size: tuple[int, int]) -> None:
    async def steps(pilot: Pilot[Any]) -> None:
        await go("i", until=on(InviteScreen))(pilot)
        await pilot.click("#create")
        await wait_for(
            pilot, lambda: pilot.app.screen.query_one("#invite-result").display, "the token"
        )
        pilot.app.screen.set_focus(None)

    assert snap_compare(console(fake), terminal_size=size, run_before=steps)


@pytest.mark.parametrize("size", SIZES)
def test_revoke_asks_first(snap_compare: SnapCompare, fake: Path, size: tuple[int, int]) -> None:
    assert snap_compare(
        console(fake),
        terminal_size=size,
        run_before=go("down", "r", until=on(ConfirmScreen, "n2", "#question")),
    )


def test_viewer_sees_no_edit_actions(snap_compare: SnapCompare, fake_viewer: Path) -> None:
    assert snap_compare(
        console(fake_viewer),
        terminal_size=(80, 24),
        run_before=go("2", until=on(VhostsScreen, "3 virtual hosts")),
    )


def test_daemon_unreachable(snap_compare: SnapCompare) -> None:
    async def steps(pilot: Pilot[Any]) -> None:
        await wait_for(pilot, lambda: "no daemon socket" in _app(pilot).link.reason, "the reason")

    app = console(Path("/nonexistent/nxmesh"))
    assert snap_compare(app, terminal_size=(80, 24), run_before=steps)
