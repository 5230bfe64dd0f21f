"""What the create/edit forms share: fields with the API's message beside each, a line for
messages that belong to no field, save (ctrl+s) and cancel (escape).

Saving sends the body to the API; the form stays open until the API accepts it, and each
field error of a refusal (422, 409) is shown next to its field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, cast

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Static

from tui.client import ApiError, FieldError
from tui.field_errors import assign_errors
from tui.widgets.form_field import FormField

if TYPE_CHECKING:
    from tui.app import NxMeshApp

__all__ = ["FormScreen"]


class FormScreen(Screen[dict[str, Any] | None]):
    """Dismisses with the saved entity, or None when cancelled."""

    FIELD_PATHS: ClassVar[Mapping[str, Sequence[str]]] = {}
    """Form field key -> the API paths it edits."""
    WHAT: ClassVar[str] = ""
    RESOURCE: ClassVar[str] = ""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, item: dict[str, Any] | None) -> None:
        super().__init__(classes="form-screen")
        self.item = item
        self.saving = False

    @property
    def nx(self) -> NxMeshApp:
        return cast("NxMeshApp", self.app)

    @property
    def title_text(self) -> str:
        if self.item is None:
            return f"New {self.WHAT}"
        return f"Edit {self.WHAT} {self.item.get('name')} ({self.item.get('id')})"

    def compose(self) -> ComposeResult:
        yield Static(self.title_text, id="form-title", markup=False)
        yield Static("", id="form-error", markup=False)
        with VerticalScroll(id="form-fields"):
            yield from self.compose_fields()
        with Horizontal(classes="buttons"):
            yield Button("Save (ctrl+s)", variant="primary", id="save")
            yield Button("Cancel (esc)", id="cancel")
        yield Footer()

    def compose_fields(self) -> ComposeResult:
        yield from ()

    def field(self, key: str) -> FormField:
        return self.query_one(f"#field-{key}", FormField)

    @property
    def form_error(self) -> str:
        return str(self.query_one("#form-error", Static).content)

    def show_errors(self, errors: Sequence[FieldError], fallback: str = "") -> None:
        """Each error beside its field; the rest (or ``fallback``) at the top."""
        placed, unplaced = assign_errors(errors, self.FIELD_PATHS)
        for form_field in self.query(FormField):
            form_field.set_errors(placed.get(form_field.key, []))
        count = sum(len(v) for v in placed.values())
        marked = f"Not saved: the API refused {count} field value{'s' if count != 1 else ''}."
        top = "\n".join(unplaced) or (marked if placed else fallback)
        banner = self.query_one("#form-error", Static)
        banner.update(top)
        banner.set_class(bool(top), "-shown")

    def body(self) -> tuple[dict[str, Any], list[FieldError]]:
        """The request body from the fields, and errors found before asking the API."""
        raise NotImplementedError

    @on(Button.Pressed, "#save")
    def _save_pressed(self) -> None:
        self.action_save()

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_save()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_save(self) -> None:
        if self.saving:
            return
        body, errors = self.body()
        if errors:
            self.show_errors(errors)
            return
        if self.item is not None and not body:
            self.dismiss(None)  # nothing changed
            return
        self.saving = True
        self.query_one("#save", Button).disabled = True
        self.run_worker(self._send(body), exit_on_error=False)

    async def _send(self, body: dict[str, Any]) -> None:
        app = self.nx
        try:
            if self.item is None:
                await app.ensure_workspace()
                saved = await app.write("POST", app.workspace_path(self.RESOURCE), body)
            else:
                path = app.workspace_path(self.RESOURCE, str(self.item["id"]))
                saved = await app.write("PATCH", path, body)
        except ApiError as exc:
            self.saving = False
            self.query_one("#save", Button).disabled = False
            self._refused(exc)
            return
        self.dismiss(saved if isinstance(saved, dict) else {"name": body.get("name")})

    def _refused(self, exc: ApiError) -> None:
        errors = list(exc.errors)
        if exc.kind == "name-taken" and not errors:
            errors = [FieldError("name", exc.message)]
        if exc.kind == "validation" or errors:
            self.show_errors(errors, fallback=exc.message)
        else:
            self.show_errors([], fallback=exc.message)
