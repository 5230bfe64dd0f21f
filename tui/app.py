"""The console: one Textual app over one node's API socket.

The app owns what every screen shares - the API client, the fleet (status and members),
the caller's role, the chosen workspace, the events seen so far - and keeps it live from
the watch stream (:func:`tui.watch.follow`). Screens subscribe to its signals:
``fleet_changed``, ``content_changed`` (a resource name, ``*`` for all), ``events_changed``
(a line added, or names learnt for old lines) and ``link_changed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import tzinfo
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.signal import Signal

from tui.client import ApiClient, ApiError
from tui.coalesce import Coalescer
from tui.commands import palette_commands
from tui.constants import DEFAULT_WORKSPACE, MEMBER_STATES
from tui.events_log import EventEntry, describe, link_entry, unit_key
from tui.fleet import Member, Quarantine, merge_member_event
from tui.modes import MODES
from tui.roles import Role, role_of_status
from tui.watch import Link, follow
from tui.widgets.nav_bar import SCREENS

__all__ = ["NxMeshApp", "run"]

MAX_EVENTS = 1000


class NxMeshApp(App[None]):
    """``nxmesh tui``: the fleet, its content and its events, live."""

    CSS_PATH = Path(__file__).with_name("app.tcss")
    TITLE = "NxMesh"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    MODES: ClassVar[dict[str, str | Callable[[], Screen[Any]]]] = dict(MODES)
    DEFAULT_MODE = "overview"
    BINDINGS: ClassVar[list[BindingType]] = [
        *(Binding(key, f"show('{mode}')", label, show=False) for key, mode, label in SCREENS),
        Binding("ctrl+t", "toggle_theme", "Theme"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        state_dir: Path,
        *,
        clock: Callable[[], float] = time.time,
        timezone: tzinfo | None = None,
        theme: str = "textual-dark",
    ) -> None:
        super().__init__()
        self.state_dir = state_dir
        self.api = ApiClient(state_dir)
        self.clock = clock
        self.timezone = timezone
        """Zone for clock times (None: local); tests pin it."""
        self.initial_theme = theme
        self.link = Link(False, reason="connecting to the daemon")
        self.status: dict[str, Any] = {}
        self.members: list[Member] = []
        self.fleet_loaded = False
        """True once ``/v1/status`` and ``/v1/nodes`` have been read."""
        self.role = Role.none
        self.events: deque[EventEntry] = deque(maxlen=MAX_EVENTS)
        self.names: dict[str, str] = {}
        """``<resource>/<id>`` -> name, for events and quarantined units."""
        self.workspaces: list[dict[str, Any]] = []
        self.workspace: dict[str, Any] | None = None
        self.fleet_changed: Signal[None] = Signal(self, "fleet_changed")
        self.content_changed: Signal[str] = Signal(self, "content_changed")
        self.events_changed: Signal[None] = Signal(self, "events_changed")
        self.link_changed: Signal[Link] = Signal(self, "link_changed")
        self._fleet = Coalescer(self, self._refresh_fleet, "fleet")
        self._names = Coalescer(self, self._learn_unit_names, "names")
        self._looked_up: set[str] = set()
        self._lookups = 0
        self._serial = 0

    # ------------------------------------------------------------------ lifecycle

    def on_mount(self) -> None:
        self.theme = self.initial_theme
        self.request_fleet_refresh()
        self.run_worker(self._follow(), name="watch", group="watch", exit_on_error=False)

    async def _follow(self) -> None:
        await follow(self.api, self._on_event, self._on_link)

    async def on_unmount(self) -> None:
        await self.api.aclose()

    def _fatal_error(self) -> None:
        """Textual's reaction to an exception nothing handled, made one plain line: an
        operator never gets a traceback (``NXMESH_DEBUG=1`` keeps Textual's)."""
        if os.environ.get("NXMESH_DEBUG"):
            super()._fatal_error()
            return
        error = self._exception
        self.panic(
            Text(f"nxmesh tui: internal error: {error!r} (set NXMESH_DEBUG=1 for a traceback)")
        )

    # ------------------------------------------------------------------ state

    @property
    def local_node(self) -> str:
        return str(self.status.get("node") or self.link.node)

    @property
    def workspace_name(self) -> str:
        return str(self.workspace.get("name", "")) if self.workspace else ""

    def member(self, name: str) -> Member | None:
        return next((m for m in self.members if m.name == name), None)

    def member_counts(self) -> str:
        """``5 members: 3 alive, 1 suspect, 1 revoked``."""
        if not self.members:
            return ""
        counts: dict[str, int] = {}
        for m in self.members:
            counts[m.state] = counts.get(m.state, 0) + 1
        order = {state: i for i, state in enumerate(MEMBER_STATES)}
        ranked = sorted(counts.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))
        states = ", ".join(f"{n} {s}" for s, n in ranked)
        return f"{len(self.members)} member{'s' if len(self.members) != 1 else ''}: {states}"

    def local_quarantine(self) -> list[Quarantine]:
        return [
            Quarantine(str(q.get("unit", "")), str(q.get("reason", "")))
            for q in self.status.get("quarantined") or ()
            if isinstance(q, dict)
        ]

    def unit_names(self) -> dict[str, str]:
        """Renderer units (``<ws>/vhost/<id>``) of the local status -> the entity's name
        where the console knows it."""
        named: dict[str, str] = {}
        for unit in self._status_units():
            name = self.names.get(unit_key(unit))
            if name:
                named[unit] = name
        return named

    def request_fleet_refresh(self) -> None:
        """Re-read status and members soon; calls made meanwhile coalesce into one."""
        self._fleet.request()

    async def _refresh_fleet(self) -> None:
        try:
            status, nodes = await asyncio.gather(
                self.api.get("/v1/status"), self.api.get("/v1/nodes")
            )
        except ApiError as exc:
            if not exc.unreachable:
                self.show_error(exc)
            return
        self.status = status if isinstance(status, dict) else {}
        self._set_role(role_of_status(self.status))
        self.members = [Member.from_api(m) for m in nodes.get("items", ())]
        self.fleet_loaded = True
        self.fleet_changed.publish(None)
        if self.workspace is None:
            with contextlib.suppress(ApiError):  # the lists say why, when they are opened
                await self.ensure_workspace()
        if self._unnamed_units():
            self._names.request()

    def _status_units(self) -> list[str]:
        return [q.unit for q in self.local_quarantine()] + list(self.status.get("units") or ())

    def _unnamed_units(self) -> set[str]:
        """Resources holding units of the local status whose names the console lacks
        (each unit is looked up once)."""
        wanted: set[str] = set()
        for unit in self._status_units():
            key = unit_key(unit)
            if unit not in self._looked_up and key not in self.names:
                wanted.add(key.partition("/")[0])
        return wanted

    async def _learn_unit_names(self) -> None:
        """Read the collections whose units the status names, so that the overview says
        ``shop - reason`` rather than an id."""
        wanted = self._unnamed_units()
        self._looked_up.update(self._status_units())
        for resource in sorted(wanted):
            try:
                await self.load(resource)
            except ApiError:
                return
        self.fleet_changed.publish(None)
        self.events_changed.publish(None)

    @property
    def refreshing(self) -> bool:
        """A re-read of the fleet (or of unit names) is pending or running."""
        return self._fleet.busy or self._names.busy or self._lookups > 0

    def _set_role(self, role: Role) -> None:
        if role != self.role:
            self.role = role
            self.refresh_bindings()

    def demote(self, exc: ApiError) -> None:
        """A write was refused (403): hide what the role may not do, and say why."""
        self._set_role(min(self.role, Role.viewer))
        self.fleet_changed.publish(None)
        self.notify(exc.message, title="Not allowed", severity="error", timeout=8)

    def show_error(self, exc: ApiError) -> None:
        title = "Daemon unreachable" if exc.unreachable else "API error"
        self.notify(exc.message, title=title, severity="error", timeout=8)

    # ------------------------------------------------------------------ watch stream

    def _on_link(self, link: Link) -> None:
        before = self.link
        self.link = link
        if link.up != before.up or link.reason != before.reason:
            if link.up or before.up:  # a transition worth a line (not every retry)
                self._add_event(link_entry(self.clock(), link.up, link.node, link.reason))
            self.link_changed.publish(link)
        if link.up:
            self.request_fleet_refresh()
            if link.reconnected:
                self.notify(f"Reconnected to {link.node}.")
                self.content_changed.publish("*")

    def _on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        name = str(event.get("node", ""))
        entry = describe(event, previous=self.member(name), local=self.local_node, now=self.clock())
        if entry is not None:
            self._add_event(entry)
            if kind == "change" and event.get("op") != "deleted":
                self._lookup(event)
        if kind == "member":
            self.members = merge_member_event(self.members, event)
            self.fleet_changed.publish(None)
            self.request_fleet_refresh()
        elif kind == "apply":
            self.request_fleet_refresh()
        elif kind == "change":
            self.content_changed.publish(str(event.get("resource", "*")))
        elif kind == "document":
            self.content_changed.publish("*")
            if str(event.get("document", "")) == "mesh":
                self.request_fleet_refresh()

    def _lookup(self, event: dict[str, Any]) -> None:
        """Learn the name of a changed entity (best effort) for the events' lines."""
        resource, entity = str(event.get("resource", "")), str(event.get("id", ""))
        workspace = event.get("workspace")
        if f"{resource}/{entity}" in self.names or not resource or not entity:
            return
        path = f"/v1/workspaces/{workspace}/{resource}/{entity}" if workspace else ""
        path = path or f"/v1/{resource}/{entity}"
        self._lookups += 1
        self.run_worker(self._learn_name(f"{resource}/{entity}", path), exit_on_error=False)

    async def _learn_name(self, key: str, path: str) -> None:
        try:
            found = await self.api.get(path)
        except ApiError:
            found = None
        finally:
            self._lookups -= 1
        if isinstance(found, dict) and found.get("name"):
            self.names[key] = str(found["name"])
            self.events_changed.publish(None)

    def _add_event(self, entry: EventEntry) -> None:
        self._serial += 1
        self.events.append(replace(entry, serial=self._serial))
        self.events_changed.publish(None)

    # ------------------------------------------------------------------ workspace content

    async def ensure_workspace(self) -> dict[str, Any]:
        """The chosen workspace: the only one, else ``default``, else the first by name."""
        if self.workspace is not None:
            return self.workspace
        data = await self.api.get("/v1/workspaces")
        items = sorted(data.get("items", ()), key=lambda w: str(w.get("name", "")))
        self.workspaces = items
        if not items:
            raise ApiError(
                "there is no workspace yet: create one with `nxmesh workspace create`",
                kind="no-workspace",
            )
        chosen = next((w for w in items if w.get("name") == DEFAULT_WORKSPACE), items[0])
        self.workspace = dict(chosen)
        self.fleet_changed.publish(None)
        return self.workspace

    def choose_workspace(self, workspace: dict[str, Any]) -> None:
        self.workspace = workspace
        self.fleet_changed.publish(None)
        self.content_changed.publish("*")

    async def load(self, resource: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(valid items, invalid stored entities) of a workspace collection."""
        ws = await self.ensure_workspace()
        data = await self.api.get(f"/v1/workspaces/{ws['id']}/{resource}")
        items = [i for i in data.get("items", ()) if isinstance(i, dict)]
        for item in items:
            self.names[f"{resource}/{item.get('id')}"] = str(item.get("name", ""))
        invalid = [i for i in data.get("invalid", ()) if isinstance(i, dict)]
        return items, invalid

    async def write(self, method: str, path: str, body: Any = None) -> Any:
        """A write through the API; a 403 demotes the role before the error goes on."""
        try:
            return await self.api.request(method, path, body=body)
        except ApiError as exc:
            if exc.forbidden:
                self.demote(exc)
            raise

    def workspace_path(self, resource: str, entity: str | None = None) -> str:
        ws = self.workspace["id"] if self.workspace else DEFAULT_WORKSPACE
        base = f"/v1/workspaces/{ws}/{resource}"
        return f"{base}/{entity}" if entity else base

    # ------------------------------------------------------------------ actions

    def action_show(self, mode: str) -> None:
        if mode in self.MODES and mode != self.current_mode:
            self.switch_mode(mode)

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"

    def open_node(self, name: str) -> None:
        from tui.screens.node_detail import NodeDetailScreen

        self.push_screen(NodeDetailScreen(name))

    def open_invite(self) -> None:
        if not self.role.can_admin:
            self.notify("Inviting a node needs the admin role.", severity="warning")
            return
        from tui.screens.invite import InviteScreen

        self.push_screen(InviteScreen())

    def open_revoke(self, name: str) -> None:
        if not self.role.can_admin:
            self.notify("Revoking a node needs the admin role.", severity="warning")
            return
        from tui.screens.revoke import confirm_revoke

        confirm_revoke(self, name)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield from palette_commands(self)


def run(state_dir: Path) -> int:
    """Run the console on ``state_dir``'s API socket until the operator quits."""
    app = NxMeshApp(state_dir)
    app.run()
    return app.return_code or 0
