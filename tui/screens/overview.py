"""The overview: every member with its state and what it serves, the convergence line,
and (on wide terminals) the latest events beside them."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Static

from tui.fleet import Member, convergence_line, short
from tui.screens.base import NxScreen
from tui.timefmt import clock_time

__all__ = ["OverviewScreen", "state_text"]

STATE_STYLES = {
    "alive": "bold green",
    "suspect": "bold yellow",
    "dead": "bold red",
    "left": "dim",
    "revoked": "red strike",
}
APPLY_STYLES = {"ok": "green", "quarantined": "yellow", "failed": "bold red", "pending": "dim"}
COLUMNS = ("NAME", "STATE", "APPLY", "REVISION", "ADDRESS", "VERSION", "NGINX", "LABELS", "KEY")
RECENT = 30


def state_text(state: str) -> Text:
    return Text(state, style=STATE_STYLES.get(state, ""))


def member_cells(m: Member) -> tuple[Text, ...]:
    return (
        Text(m.name, style="bold"),
        state_text(m.state),
        Text(m.apply_text, style=APPLY_STYLES.get(m.apply, "")),
        Text(short(m.revision)),
        Text(m.address or "-"),
        Text(m.version or "-"),
        Text(m.nginx or "-"),
        Text(m.labels_text),
        Text(m.key or "-"),
    )


class MembersTable(DataTable[Any]):
    """The members; enter (or a click) opens the node's detail."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "select_cursor", "Details")]


class OverviewScreen(NxScreen):
    """Members, convergence, recent events."""

    NAV = "overview"
    ADMIN_ACTIONS = frozenset({"invite", "revoke"})
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "details", "Details", show=False),
        Binding("i", "invite", "Invite"),
        Binding("r", "revoke", "Revoke"),
    ]

    _complete = False

    def compose_body(self) -> ComposeResult:
        yield Static("", id="convergence", markup=False)
        with Horizontal(id="overview-body"):
            table = MembersTable(id="members", cursor_type="row", zebra_stripes=True)
            for title in COLUMNS:
                table.add_column(title, key=title.lower())
            yield table
            with Vertical(id="recent"):
                yield Static("Recent events", classes="panel-title")
                yield Static("", id="recent-events", markup=False)

    def on_mount(self) -> None:
        self.nx.fleet_changed.subscribe(self, lambda _none: self.show_fleet())
        self.nx.link_changed.subscribe(self, lambda _link: self.show_fleet())
        self.nx.events_changed.subscribe(self, lambda _none: self.show_recent())
        self.show_fleet()
        self.show_recent()

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one("#members", DataTable)

    def show_fleet(self) -> None:
        app = self.nx
        line = self.query_one("#convergence", Static)
        if app.members:
            line.update(
                convergence_line(
                    app.members,
                    local=app.local_node,
                    quarantined=app.local_quarantine(),
                    names=app.unit_names(),
                    workspace_names={
                        str(ws.get("id")): str(ws.get("name")) for ws in app.workspaces
                    },
                )
            )
        else:
            line.update("No members yet." if app.fleet_loaded else "Reading the fleet...")
        line.set_class(any(m.apply in ("failed", "quarantined") for m in app.members), "-warn")
        table = self.table
        # Keep the cursor on its member, unless the rows came from events alone so far
        # (members the stream mentioned before the first read of /v1/nodes).
        keep = self.selected() if self._complete else None
        self._complete = app.fleet_loaded
        table.clear()
        for m in app.members:
            table.add_row(*member_cells(m), key=m.name)
        if keep is not None and keep in {m.name for m in app.members}:
            table.move_cursor(row=table.get_row_index(keep), animate=False)

    def show_recent(self) -> None:
        app = self.nx
        latest = sorted(app.events, key=lambda e: e.at, reverse=True)[:RECENT]
        lines = [f"{clock_time(e.at, app.timezone)} {e.node} {e.shown(app.names)}" for e in latest]
        self.query_one("#recent-events", Static).update("\n".join(lines) or "None yet.")

    def selected(self) -> str | None:
        table = self.table
        if table.row_count == 0:
            return None
        row = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return str(row.value) if row.value is not None else None

    @on(DataTable.RowSelected, "#members")
    def _open(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.nx.open_node(str(event.row_key.value))

    def action_details(self) -> None:
        name = self.selected()
        if name is not None:
            self.nx.open_node(name)

    def action_invite(self) -> None:
        self.nx.open_invite()

    def action_revoke(self) -> None:
        name = self.selected()
        if name is None:
            return
        if name == self.nx.local_node:
            self.notify("This is the node the console talks to; revoke it from another node.")
            return
        self.nx.open_revoke(name)
