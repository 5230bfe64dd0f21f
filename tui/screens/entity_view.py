"""A read-only view of one entity as the API returns it (what a viewer gets on enter)."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.highlight import highlight
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

__all__ = ["EntityViewScreen"]


class EntityViewScreen(ModalScreen[None]):
    """Pretty JSON of ``entity``; escape closes."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q", "dismiss", "Close")]

    def __init__(self, title: str, entity: dict[str, Any]) -> None:
        super().__init__(classes="modal")
        self.view_title = title
        self.entity = entity

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide-dialog"):
            yield Static(self.view_title, classes="dialog-title", markup=False)
            with VerticalScroll():
                text = json.dumps(self.entity, indent=2, sort_keys=True)
                yield Static(highlight(text, language="json"), id="entity-json")
        yield Footer()
