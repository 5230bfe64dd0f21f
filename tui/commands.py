"""The command palette's own entries (``ctrl+p``): every screen, every node's detail,
invite and revoke for admins, the other workspaces, the theme."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from textual.app import SystemCommand

from tui.widgets.nav_bar import SCREENS

if TYPE_CHECKING:
    from tui.app import NxMeshApp

__all__ = ["palette_commands"]


def palette_commands(app: NxMeshApp) -> Iterator[SystemCommand]:
    for key, mode, label in SCREENS:
        yield SystemCommand(f"Go to {label}", f"Show the {label.lower()} screen ({key})",
                            lambda mode=mode: app.action_show(mode))  # fmt: skip
    yield SystemCommand(
        "Toggle light/dark", "Switch between the light and dark theme", app.action_toggle_theme
    )
    for m in app.members:
        yield SystemCommand(f"Node {m.name}", f"Details of {m.name} ({m.state})",
                            lambda name=m.name: app.open_node(name))  # fmt: skip
    if app.role.can_admin:
        yield SystemCommand("Invite a node", "Create a join token", app.open_invite)
        for m in app.members:
            if m.state != "revoked" and m.name != app.local_node:
                yield SystemCommand(f"Revoke {m.name}", f"Revoke {m.name} for good (asks first)",
                                    lambda name=m.name: app.open_revoke(name))  # fmt: skip
    current = app.workspace["id"] if app.workspace else None
    for ws in app.workspaces:
        if ws.get("id") != current:
            yield SystemCommand(f"Workspace {ws.get('name')}", "Show this workspace's content",
                                lambda ws=ws: app.choose_workspace(ws))  # fmt: skip
