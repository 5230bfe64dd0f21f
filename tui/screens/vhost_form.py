"""Create or edit a virtual host: names, server names, where ``/`` (or another path)
proxies to, entry points, enabled, WebSocket, description. What the form does not show
(more locations, headers, TLS) is kept on edit."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.widgets import Checkbox, Input, Select

from tui.bodies import VHOST_FIELDS, VhostValues, vhost_body
from tui.client import ApiError, FieldError
from tui.screens.form_base import FormScreen
from tui.widgets.form_field import FormField

__all__ = ["VhostFormScreen"]


class VhostFormScreen(FormScreen):
    FIELD_PATHS = VHOST_FIELDS
    WHAT = "virtual host"
    RESOURCE = "vhosts"

    def compose_fields(self) -> ComposeResult:
        v = VhostValues.of(self.item) if self.item else VhostValues("", "", None)
        yield FormField("name", "Name", Input(v.name, id="name", compact=True))
        yield FormField(
            "server_names", "Server names",
            Input(v.server_names, id="server_names", compact=True,
                  placeholder="shop.example.test www.shop.example.test"),
        )  # fmt: skip
        select: Select[str] = Select(
            [], id="upstream", compact=True, prompt="choose an upstream", allow_blank=True
        )
        yield FormField("upstream", "Upstream", select, hint="where the path is proxied")
        yield FormField("path", "Path", Input(v.path, id="path", compact=True))
        yield FormField(
            "entry_points", "Entry points",
            Input(v.entry_points, id="entry_points", compact=True, placeholder="http https"),
        )  # fmt: skip
        enabled = Checkbox("serve it", v.enabled, id="enabled", compact=True)
        yield FormField("enabled", "Enabled", enabled)
        websocket = Checkbox("pass upgrades", v.websocket, id="websocket", compact=True)
        yield FormField("websocket", "WebSocket", websocket)
        yield FormField("description", "Description", Input(v.description, id="description",
                                                             compact=True))  # fmt: skip

    def on_mount(self) -> None:
        self.query_one("#name", Input).focus()
        self.run_worker(self._load_upstreams(), exit_on_error=False)

    async def _load_upstreams(self) -> None:
        try:
            upstreams, _ = await self.nx.load("upstreams")
        except ApiError as exc:
            self.show_errors([FieldError("locations[0].upstream", exc.message)])
            return
        options = sorted((str(u.get("name")), str(u.get("id"))) for u in upstreams)
        current = VhostValues.of(self.item).upstream if self.item else None
        if current is not None and current not in {i for _, i in options}:
            options.append((f"{current} (missing)", current))
        select: Select[str] = self.query_one("#upstream", Select)
        select.set_options(options)
        if current is not None:
            select.value = current
        elif len(options) == 1:
            select.value = options[0][1]

    def values(self) -> VhostValues:
        upstream = self.query_one("#upstream", Select).value
        return VhostValues(
            name=self.query_one("#name", Input).value,
            server_names=self.query_one("#server_names", Input).value,
            upstream=upstream if isinstance(upstream, str) else None,
            path=self.query_one("#path", Input).value,
            entry_points=self.query_one("#entry_points", Input).value,
            enabled=self.query_one("#enabled", Checkbox).value,
            websocket=self.query_one("#websocket", Checkbox).value,
            description=self.query_one("#description", Input).value,
        )

    def body(self) -> tuple[dict[str, Any], list[FieldError]]:
        return vhost_body(self.values(), self.item), []
