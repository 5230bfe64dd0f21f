"""The line under the navigation: which node the console talks to and as whom, or - in
plain words - why it cannot reach the daemon and that it keeps trying."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.content import Content
from textual.widgets import Static

if TYPE_CHECKING:
    from tui.app import NxMeshApp

__all__ = ["LinkBanner"]


class LinkBanner(Static):
    """Connection state; classes ``-up`` / ``-down`` colour it."""

    def __init__(self) -> None:
        super().__init__(id="link-banner", markup=False)

    @property
    def nx(self) -> NxMeshApp:
        return cast("NxMeshApp", self.app)

    def on_mount(self) -> None:
        self.nx.link_changed.subscribe(self, lambda _link: self.show())
        self.nx.fleet_changed.subscribe(self, lambda _none: self.show())
        self.show()

    def show(self) -> None:
        app = self.nx
        link = app.link
        self.set_class(link.up, "-up")
        self.set_class(not link.up, "-down")
        if link.up:
            who = f"● on {link.node}" + (f" as {app.role.name}" if app.role else "")
            parts = [who]
            if app.workspace_name:
                parts.append(f"workspace {app.workspace_name}")
            counts = app.member_counts()
            if counts:
                parts.append(counts)
            self.update(Content(" · ".join(parts)))
        else:
            self.update(Content(f"✖ {link.reason} - retrying"))
