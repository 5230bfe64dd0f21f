"""A filter line over a sortable table: the list view of virtual hosts, upstreams,
certificates and events.

Rows are kept in full; the table shows those whose text contains every word of the
filter, sorted by one column (``s`` next column, ``S`` reverse, or click a header).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.timer import Timer
from textual.widgets import DataTable, Input, Static

__all__ = ["EntityTable", "Row"]

FILTER_DELAY = 0.15
"""Seconds of no typing before the filter applies."""

Cell = str | Text


@dataclass(frozen=True, slots=True)
class Row:
    """One row: its key (an id), what each column shows, and what each column sorts by."""

    key: str
    cells: tuple[Cell, ...]
    sort: tuple[Any, ...]

    @property
    def text(self) -> str:
        return " ".join(c.plain if isinstance(c, Text) else c for c in self.cells).lower()


def _plain(cell: Cell) -> Text:
    """A cell as text: a ``str`` would be read as markup by the table (``[0]`` vanishes)."""
    return cell if isinstance(cell, Text) else Text(cell)


def _sort_key(value: Any) -> tuple[int, Any]:
    """Numbers before text, None last; tuples compare item by item; never raises."""
    if value is None:
        return (3, "")
    if isinstance(value, tuple):
        return (2, tuple(_sort_key(v) for v in value))
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, value)
    return (1, str(value).lower())


class RowsTable(DataTable[Cell]):
    """The table; enter (or a click) opens the row."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "select_cursor", "Open")]


class EntityTable(Vertical):
    """Filter input + DataTable; ``rows`` holds everything, the table what matches."""

    BINDINGS = [
        Binding("slash", "focus_filter", "Filter"),
        Binding("s", "sort", "Sort"),
        Binding("S", "reverse", "Reverse", show=False),
    ]

    def __init__(
        self,
        columns: Sequence[str],
        *,
        id: str,
        sort_column: int = 0,
        reverse: bool = False,
        empty: str = "Nothing here yet.",
    ) -> None:
        super().__init__(id=id, classes="entity-table")
        self.columns = tuple(columns)
        self.sort_column = sort_column
        self.reverse = reverse
        self.empty = empty
        self.rows: list[Row] = []
        self.shown: list[Row] = []
        self._pending: Timer | None = None

    def compose(self) -> ComposeResult:
        yield FilterInput(placeholder="/ to filter", compact=True, classes="filter")
        yield RowsTable(cursor_type="row", zebra_stripes=True)
        yield Static(self.empty, classes="empty", markup=False)

    @property
    def table(self) -> DataTable[Cell]:
        return self.query_one(DataTable)

    @property
    def filter_input(self) -> Input:
        return self.query_one(Input)

    def on_mount(self) -> None:
        self._render_rows()

    def set_empty(self, text: str) -> None:
        """What to say when nothing is listed (e.g. an error, or no workspace yet)."""
        self.empty = text
        self.query_one(".empty", Static).update(text)

    def set_rows(self, rows: Sequence[Row]) -> None:
        self.rows = list(rows)
        self._render_rows()

    def current_key(self) -> str | None:
        """The key of the row under the cursor, if any row is shown."""
        table = self.table
        if not self.shown or table.cursor_row < 0 or table.cursor_row >= len(self.shown):
            return None
        return self.shown[table.cursor_row].key

    def _render_rows(self) -> None:
        if not self.is_mounted:
            return
        words = self.filter_input.value.lower().split()
        shown = [r for r in self.rows if all(w in r.text for w in words)]
        column = self.sort_column
        shown.sort(key=lambda r: _sort_key(r.sort[column]), reverse=self.reverse)
        table = self.table
        keep = self.current_key()
        table.clear(columns=True)
        for i, title in enumerate(self.columns):
            mark = (" ▼" if self.reverse else " ▲") if i == column else ""
            table.add_column(f"{title}{mark}", key=str(i))
        table.add_rows([[_plain(c) for c in r.cells] for r in shown])
        self.shown = shown
        if keep is not None:
            for i, row in enumerate(shown):
                if row.key == keep:
                    table.move_cursor(row=i, animate=False)
                    break
        self.set_class(not shown, "-empty")
        if not shown and self.rows:
            self.query_one(".empty", Static).update("No row matches the filter.")
        else:
            self.query_one(".empty", Static).update(self.empty)

    @on(Input.Changed, ".filter")
    def _filter_changed(self) -> None:
        # Re-filtering a thousand rows costs a tenth of a second or more (the table
        # measures every cell): wait until typing pauses.
        if self._pending is not None:
            self._pending.stop()
        self._pending = self.set_timer(FILTER_DELAY, self._apply_filter)

    def _apply_filter(self) -> None:
        self._pending = None
        self._render_rows()

    @on(Input.Submitted, ".filter")
    def _filter_done(self) -> None:
        if self._pending is not None:
            self._pending.stop()
            self._apply_filter()
        self.table.focus()

    @on(DataTable.HeaderSelected)
    def _header(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        if event.column_index == self.sort_column:
            self.reverse = not self.reverse
        else:
            self.sort_column, self.reverse = event.column_index, False
        self._render_rows()

    def action_focus_filter(self) -> None:
        self.filter_input.focus()

    def action_sort(self) -> None:
        self.sort_column = (self.sort_column + 1) % len(self.columns)
        self.reverse = False
        self._render_rows()

    def action_reverse(self) -> None:
        self.reverse = not self.reverse
        self._render_rows()


class FilterInput(Input):
    """The filter line; escape clears it and returns to the table."""

    BINDINGS = [Binding("escape", "clear", "Clear filter")]

    def action_clear(self) -> None:
        self.value = ""
        parent = self.parent
        if isinstance(parent, EntityTable):
            parent.table.focus()
