"""What every top-level screen has: the navigation line, the connection line, a body and
the footer with the bindings that apply."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, cast

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer

from tui.widgets.link_banner import LinkBanner
from tui.widgets.nav_bar import NavBar

if TYPE_CHECKING:
    from tui.app import NxMeshApp

__all__ = ["NxScreen"]


class NxScreen(Screen[Any]):
    """A console screen; subclasses yield their widgets from :meth:`compose_body`."""

    NAV: ClassVar[str] = ""
    """The navigation entry highlighted while this screen shows."""

    EDIT_ACTIONS: ClassVar[frozenset[str]] = frozenset()
    """Actions that change workspace content: hidden unless the role is operator+."""
    ADMIN_ACTIONS: ClassVar[frozenset[str]] = frozenset()
    """Actions that need the admin role: hidden otherwise."""

    @property
    def nx(self) -> NxMeshApp:
        return cast("NxMeshApp", self.app)

    def compose(self) -> ComposeResult:
        yield NavBar(self.NAV)
        yield LinkBanner()
        yield from self.compose_body()
        yield Footer()

    def compose_body(self) -> ComposeResult:
        yield from ()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Edit actions exist only for roles that may use them (a viewer never sees them)."""
        if action in self.EDIT_ACTIONS:
            return self.nx.role.can_edit
        if action in self.ADMIN_ACTIONS:
            return self.nx.role.can_admin
        return True
