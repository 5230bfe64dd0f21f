"""What the virtual-host, upstream and certificate screens share: a workspace collection
listed in an :class:`~tui.widgets.entity_table.EntityTable`, re-read when the watch stream
says it changed, with new / edit / delete for roles that may edit."""

from __future__ import annotations

from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Static

from tui.client import ApiError
from tui.coalesce import Coalescer
from tui.screens.base import NxScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.entity_view import EntityViewScreen
from tui.widgets.entity_table import EntityTable, Row

__all__ = ["EntityListScreen"]


class EntityListScreen(NxScreen):
    """A workspace collection; subclasses say how a row looks and which form edits it."""

    RESOURCE: ClassVar[str] = ""
    WHAT: ClassVar[str] = ""
    """The kind in words, singular (``virtual host``)."""
    COLUMNS: ClassVar[tuple[str, ...]] = ()
    EDITABLE: ClassVar[bool] = True
    EDIT_ACTIONS = frozenset({"new", "edit", "delete"})
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "new", "New"),
        Binding("e", "edit", "Edit"),
        Binding("d", "delete", "Delete"),
        Binding("v", "view", "View", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[str, dict[str, Any]] = {}
        self.invalid: list[dict[str, Any]] = []
        self._reload = Coalescer(self, self._load, "load")
        self._loaded_once = False
        self._stale = False

    def compose_body(self) -> ComposeResult:
        yield Static("", id="list-title", markup=False)
        yield EntityTable(self.COLUMNS, id="entities", empty=f"No {self.WHAT}s yet.")

    @property
    def entity_table(self) -> EntityTable:
        return self.query_one("#entities", EntityTable)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self.EDIT_ACTIONS and not self.EDITABLE:
            return False
        return super().check_action(action, parameters)

    def on_mount(self) -> None:
        self.nx.content_changed.subscribe(self, self._content_changed)
        self.nx.fleet_changed.subscribe(self, lambda _none: self._show_title())
        self.reload()
        self.entity_table.table.focus()

    def _content_changed(self, resource: str) -> None:
        if resource in ("*", self.RESOURCE):
            if self.is_current:
                self.reload()
            else:
                self._stale = True  # re-read when shown again, not while hidden

    def on_screen_resume(self) -> None:
        if self._stale:
            self._stale = False
            self.reload()

    def reload(self) -> None:
        self._reload.request()

    async def _load(self) -> None:
        try:
            items, invalid = await self.nx.load(self.RESOURCE)
        except ApiError as exc:
            self.entity_table.set_empty(f"Cannot list {self.WHAT}s: {exc.message}")
            self.entity_table.set_rows([])
            self.items = {}
            self._show_title(error=True)
            return
        self.items = {str(i.get("id")): i for i in items}
        self.invalid = invalid
        self.entity_table.set_empty(f"No {self.WHAT}s in workspace {self.nx.workspace_name}.")
        self.entity_table.set_rows([self.row(i) for i in items])
        self._loaded_once = True
        self._show_title()

    def _show_title(self, error: bool = False) -> None:
        title = self.query_one("#list-title", Static)
        ws = self.nx.workspace_name or "?"
        if error:
            title.update(f"{self.WHAT.capitalize()}s of workspace {ws}")
            return
        text = (
            f"{len(self.items)} {self.WHAT}{'s' if len(self.items) != 1 else ''} in workspace {ws}"
        )
        invalid = self.invalid
        if invalid:
            first = invalid[0]
            errors = first.get("errors") or [{}]
            text += (
                f" · {len(invalid)} stored {self.WHAT}(s) do not validate, e.g. "
                f"{first.get('id')}: {errors[0].get('field')}: {errors[0].get('reason')}"
            )
        title.update(text)
        title.set_class(bool(invalid), "-warn")

    def row(self, item: dict[str, Any]) -> Row:
        raise NotImplementedError

    def form(self, item: dict[str, Any] | None) -> Any:
        """The form screen creating (``item`` None) or editing ``item``."""
        raise NotImplementedError

    def current(self) -> dict[str, Any] | None:
        key = self.entity_table.current_key()
        return self.items.get(key) if key is not None else None

    @property
    def loaded(self) -> bool:
        return self._loaded_once and not self._reload.busy

    # ------------------------------------------------------------------ actions

    @on(DataTable.RowSelected)
    def _selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if self.EDITABLE and self.nx.role.can_edit:
            self.action_edit()
        else:
            self.action_view()

    def action_view(self) -> None:
        item = self.current()
        if item is not None:
            self.app.push_screen(EntityViewScreen(f"{self.WHAT} {item.get('name')}", item))

    def action_new(self) -> None:
        self.app.push_screen(self.form(None), self._saved)

    def action_edit(self) -> None:
        item = self.current()
        if item is not None:
            self.app.push_screen(self.form(item), self._saved)

    def _saved(self, result: dict[str, Any] | None) -> None:
        if result is not None:
            self.notify(f"Saved {self.WHAT} {result.get('name')}.")
            self.reload()

    def action_delete(self) -> None:
        item = self.current()
        if item is None:
            return
        name = str(item.get("name"))
        question = f"Delete {self.WHAT} {name}?\nEvery node stops serving it."

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_worker(self._delete(item), exit_on_error=False)

        self.app.push_screen(ConfirmScreen(question, "Delete"), answered)

    async def _delete(self, item: dict[str, Any]) -> None:
        try:
            await self.nx.write("DELETE", self.nx.workspace_path(self.RESOURCE, str(item["id"])))
        except ApiError as exc:
            if not exc.forbidden:
                self.notify(exc.message, title="Not deleted", severity="error", timeout=10)
            return
        self.notify(f"Deleted {self.WHAT} {item.get('name')}.")
        self.reload()
