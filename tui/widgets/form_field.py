"""One line of a form: a label, the input, and the API's message for it right below."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Label, Static

__all__ = ["FormField"]


class FormField(Horizontal):
    """``#field-KEY`` holding the input; ``#error-KEY`` shows what the API said about it."""

    def __init__(self, key: str, label: str, widget: Widget, hint: str = "") -> None:
        super().__init__(id=f"field-{key}", classes="form-field")
        self.key = key
        self.label = label
        self.widget = widget
        self.hint = hint

    def compose(self) -> ComposeResult:
        yield Label(self.label, classes="field-label")
        with Vertical(classes="field-body"):
            yield self.widget
            yield Static("", id=f"error-{self.key}", classes="field-error", markup=False)
            if self.hint:
                yield Static(self.hint, classes="field-hint", markup=False)

    @property
    def error_text(self) -> str:
        return str(self.query_one(f"#error-{self.key}", Static).content)

    def set_errors(self, messages: Sequence[str]) -> None:
        """Show ``messages`` under the input (none: hide the line)."""
        self.query_one(f"#error-{self.key}", Static).update("\n".join(messages))
        self.set_class(bool(messages), "-invalid")
