"""Revoke a node for good, after the operator confirms."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tui.client import ApiError
from tui.screens.confirm import ConfirmScreen

if TYPE_CHECKING:
    from tui.app import NxMeshApp

__all__ = ["confirm_revoke"]


def confirm_revoke(app: NxMeshApp, name: str) -> None:
    """Ask; on yes, ``POST /v1/nodes/{name}/revoke`` and say how it went."""
    question = (
        f"Revoke {name} for good?\n"
        "Its key is never a member again: it cannot rejoin, and every node drops its packets."
    )

    async def revoke() -> None:
        try:
            await app.write("POST", f"/v1/nodes/{name}/revoke", {})
        except ApiError as exc:
            if not exc.forbidden:
                app.notify(exc.message, title="Not revoked", severity="error", timeout=10)
            return
        app.notify(f"Revoked {name}.")
        app.request_fleet_refresh()

    def answered(yes: bool | None) -> None:
        if yes:
            app.run_worker(revoke(), exit_on_error=False)

    app.push_screen(ConfirmScreen(question, "Revoke"), answered)
