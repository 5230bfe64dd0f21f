"""The top line: the console's name, the node it talks to, and its screens with their keys.

Each screen's entry is clickable; the active one is highlighted.
"""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

__all__ = ["SCREENS", "NavBar"]

SCREENS: tuple[tuple[str, str, str], ...] = (
    # (key, mode, label)
    ("1", "overview", "Overview"),
    ("2", "vhosts", "Vhosts"),
    ("3", "upstreams", "Upstreams"),
    ("4", "certificates", "Certificates"),
    ("5", "events", "Events"),
)


class NavBar(Static):
    """``NxMesh  1 Overview  2 Virtual hosts ...`` with the active screen highlighted."""

    def __init__(self, active: str) -> None:
        super().__init__(self.content_for(active), id="nav-bar")
        self.active = active

    @staticmethod
    def content_for(active: str) -> Content:
        parts = ["[bold $text-accent] NxMesh [/]"]
        for key, mode, label in SCREENS:
            if mode == active:
                item = f"[reverse bold] {key} {label} [/]"
            else:
                item = f"[bold $text-accent] {key}[/] {label} "
            parts.append(f"[@click=app.show('{mode}')]{item}[/]")
        return Content.from_markup(" ".join(parts))
