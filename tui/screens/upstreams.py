"""Upstreams of the chosen workspace: list, filter, sort, create, edit, delete."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from tui.screens.entity_list import EntityListScreen
from tui.screens.upstream_form import UpstreamFormScreen
from tui.widgets.entity_table import Row

__all__ = ["UpstreamsScreen"]


class UpstreamsScreen(EntityListScreen):
    NAV = "upstreams"
    RESOURCE = "upstreams"
    WHAT = "upstream"
    COLUMNS = ("NAME", "METHOD", "SERVERS", "#", "KEEPALIVE", "ID")

    def row(self, item: dict[str, Any]) -> Row:
        servers = [s for s in item.get("servers") or () if isinstance(s, dict)]
        addresses = " ".join(
            str(s.get("address")) + (" (backup)" if s.get("backup") else "")
            + (" (down)" if s.get("down") else "")
            for s in servers
        )  # fmt: skip
        keepalive = int(item.get("keepalive") or 0)
        cells = (
            Text(str(item.get("name", "")), style="bold"),
            str(item.get("method", "")),
            addresses or "-",
            str(len(servers)),
            str(keepalive) if keepalive else "-",
            str(item.get("id", "")),
        )
        sort = (
            str(item.get("name", "")),
            str(item.get("method", "")),
            addresses,
            len(servers),
            keepalive,
            str(item.get("id", "")),
        )
        return Row(str(item.get("id")), cells, sort)

    def form(self, item: dict[str, Any] | None) -> UpstreamFormScreen:
        return UpstreamFormScreen(item)
