"""Events seen on the watch stream since the console started: joins, failures, reloads,
edits and the console's own connection; newest first, filterable."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from tui.coalesce import Coalescer
from tui.events_log import EventEntry
from tui.screens.base import NxScreen
from tui.screens.entity_view import EntityViewScreen
from tui.timefmt import clock_time
from tui.widgets.entity_table import EntityTable, Row

__all__ = ["EventsScreen"]

MIN_INTERVAL = 0.25
"""Seconds between two redraws of the list."""
SEVERITY_STYLES = {"warning": "bold yellow", "error": "bold red"}


class EventsScreen(NxScreen):
    NAV = "events"
    COLUMNS: ClassVar[tuple[str, ...]] = ("TIME", "KIND", "NODE", "WHAT")

    def __init__(self) -> None:
        super().__init__()
        self._refresh = Coalescer(self, self._show, "events")
        self._stale = False

    def compose_body(self) -> ComposeResult:
        yield Static("", id="list-title", markup=False)
        yield EntityTable(
            self.COLUMNS,
            id="events",
            sort_column=0,
            reverse=True,
            empty="No events yet: they appear here as the watch stream reports them.",
        )

    def on_mount(self) -> None:
        self.nx.events_changed.subscribe(self, lambda _none: self._changed())
        self._refresh.request()
        self.query_one(EntityTable).table.focus()

    def _changed(self) -> None:
        if self.is_current:
            self._refresh.request()
        else:
            self._stale = True

    def on_screen_resume(self) -> None:
        if self._stale:
            self._stale = False
            self._refresh.request()

    async def _show(self) -> None:
        events = list(self.nx.events)
        self.query_one("#list-title", Static).update(
            f"{len(events)} event{'s' if len(events) != 1 else ''} since the console started"
        )
        self.query_one(EntityTable).set_rows([self.row(e) for e in events])
        await asyncio.sleep(MIN_INTERVAL)  # a busy stream redraws a few times a second

    @on(DataTable.RowSelected)
    def _open(self, event: DataTable.RowSelected) -> None:
        """The whole line (the table cuts long ones) and the event as the stream sent it."""
        event.stop()
        key = self.query_one(EntityTable).current_key()
        e = next((e for e in self.nx.events if str(e.serial) == key), None)
        if e is None:
            return
        when = clock_time(e.at, self.nx.timezone)
        detail = {"line": e.shown(self.nx.names), "event": dict(e.raw)}
        self.app.push_screen(EntityViewScreen(f"{e.kind} at {when} on {e.node or '-'}", detail))

    def row(self, e: EventEntry) -> Row:
        style = SEVERITY_STYLES.get(e.severity, "")
        text = e.shown(self.nx.names)
        cells = (
            clock_time(e.at, self.nx.timezone),
            Text(e.kind, style=style),
            e.node or "-",
            Text(text, style=style) if style else text,
        )
        return Row(str(e.serial), cells, ((e.at, e.serial), e.kind, e.node, text))
