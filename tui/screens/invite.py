"""Invite a node: choose how long the token lives and how many joins it admits, then get
the token and the command to run on the new host (copy either to the clipboard)."""

from __future__ import annotations

import shlex
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, cast

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Static, TextArea

from tui.client import ApiError
from tui.widgets.form_field import FormField

if TYPE_CHECKING:
    from tui.app import NxMeshApp

__all__ = ["InviteScreen", "join_command"]


def join_command(token: str) -> str:
    """What to run on the new host (its name and mesh address are the operator's)."""
    return f"nxmesh join {shlex.quote(token)} --name NEW-NODE --listen HOST:PORT"


class InviteScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close"),
        Binding("ctrl+y", "copy_command", "Copy command"),
        Binding("ctrl+k", "copy_token", "Copy token"),
    ]

    def __init__(self) -> None:
        super().__init__(classes="modal")
        self.invite: dict[str, Any] | None = None

    @property
    def nx(self) -> NxMeshApp:
        return cast("NxMeshApp", self.app)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide-dialog", id="invite-dialog"):
            yield Static("Invite a node", classes="dialog-title")
            yield FormField("ttl", "Valid for", Input("1h", id="ttl", compact=True),
                            hint="a duration: 90s, 15m, 1h, 2d")  # fmt: skip
            yield FormField("uses", "Joins", Input("1", id="uses", compact=True))
            yield Static("", id="form-error", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Create token", variant="primary", id="create")
                yield Button("Close (esc)", id="close")
            with Vertical(id="invite-result"):
                yield Static("", id="invite-expiry", markup=False)
                yield Static("Run on the new host:", classes="field-hint")
                yield TextArea("", id="join-command", read_only=True, soft_wrap=True,
                               compact=True)  # fmt: skip
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#invite-result").display = False
        self.query_one("#ttl", Input).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("copy_command", "copy_token"):
            return self.invite is not None
        return True

    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#create")
    @on(Input.Submitted)
    def _create(self) -> None:
        ttl = self.query_one("#ttl", Input).value.strip()
        uses_text = self.query_one("#uses", Input).value.strip()
        uses: Any = int(uses_text) if uses_text.isdigit() else uses_text
        self.run_worker(self._send({"ttl": ttl, "uses": uses}), exit_on_error=False)

    async def _send(self, body: dict[str, Any]) -> None:
        for key in ("ttl", "uses"):
            self.query_one(f"#field-{key}", FormField).set_errors([])
        error = self.query_one("#form-error", Static)
        try:
            invite = await self.nx.write("POST", "/v1/invites", body)
        except ApiError as exc:
            placed = False
            for e in exc.errors:
                if e.field in ("ttl", "uses"):
                    self.query_one(f"#field-{e.field}", FormField).set_errors([e.reason])
                    placed = True
            error.update("" if placed else exc.message)
            error.set_class(not placed, "-shown")
            return
        error.update("")
        error.set_class(False, "-shown")
        self.show_invite(invite)

    def show_invite(self, invite: dict[str, Any]) -> None:
        self.invite = invite
        expires = datetime.fromtimestamp(float(invite.get("expires_at", 0)), self.nx.timezone)
        uses = invite.get("uses")
        self.query_one("#invite-expiry", Static).update(
            f"Token for {uses} join{'s' if uses != 1 else ''}, valid until "
            f"{expires:%Y-%m-%d %H:%M:%S}. It is shown once; only a hash of it is stored."
        )
        self.query_one("#join-command", TextArea).text = join_command(str(invite["token"]))
        self.query_one("#invite-result").display = True
        self.query_one("#join-command", TextArea).focus()
        self.refresh_bindings()

    def action_copy_command(self) -> None:
        if self.invite is not None:
            self.app.copy_to_clipboard(join_command(str(self.invite["token"])))
            self.notify("Copied the join command.")

    def action_copy_token(self) -> None:
        if self.invite is not None:
            self.app.copy_to_clipboard(str(self.invite["token"]))
            self.notify("Copied the token.")
