"""Create or edit an upstream: name, servers (one a line, with options), balancing
method, hash key, keepalive, description."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.widgets import Input, Select, TextArea

from tui.bodies import UPSTREAM_FIELDS, UpstreamValues, upstream_body
from tui.client import FieldError
from tui.constants import UPSTREAM_METHODS
from tui.screens.form_base import FormScreen
from tui.widgets.form_field import FormField

__all__ = ["UpstreamFormScreen"]

SERVERS_HINT = "one a line: ADDRESS [weight=N] [max_fails=N] [fail_timeout=10s] [backup] [down]"


class UpstreamFormScreen(FormScreen):
    FIELD_PATHS = UPSTREAM_FIELDS
    WHAT = "upstream"
    RESOURCE = "upstreams"

    def compose_fields(self) -> ComposeResult:
        v = UpstreamValues.of(self.item) if self.item else UpstreamValues("", "")
        yield FormField("name", "Name", Input(v.name, id="name", compact=True))
        servers = TextArea(v.servers, id="servers", compact=True, soft_wrap=False)
        yield FormField("servers", "Servers", servers, hint=SERVERS_HINT)
        method: Select[str] = Select(
            [(m, m) for m in UPSTREAM_METHODS], value=v.method, id="method", compact=True,
            allow_blank=False,
        )  # fmt: skip
        yield FormField("method", "Method", method)
        hash_key = Input(v.hash_key, id="hash_key", compact=True, placeholder="$request_uri")
        yield FormField("hash_key", "Hash key", hash_key, hint="for the hash method")
        yield FormField("keepalive", "Keepalive", Input(v.keepalive, id="keepalive", compact=True))
        yield FormField(
            "description", "Description", Input(v.description, id="description", compact=True)
        )

    def on_mount(self) -> None:
        self.query_one("#name", Input).focus()

    def values(self) -> UpstreamValues:
        method = self.query_one("#method", Select).value
        return UpstreamValues(
            name=self.query_one("#name", Input).value,
            servers=self.query_one("#servers", TextArea).text,
            method=method if isinstance(method, str) else "round_robin",
            hash_key=self.query_one("#hash_key", Input).value,
            keepalive=self.query_one("#keepalive", Input).value,
            description=self.query_one("#description", Input).value,
        )

    def body(self) -> tuple[dict[str, Any], list[FieldError]]:
        return upstream_body(self.values(), self.item)
