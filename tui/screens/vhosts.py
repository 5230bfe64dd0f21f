"""Virtual hosts of the chosen workspace: list, filter, sort, create, edit, delete."""

from __future__ import annotations

import contextlib
from typing import Any

from rich.text import Text

from tui.client import ApiError
from tui.screens.entity_list import EntityListScreen
from tui.screens.vhost_form import VhostFormScreen
from tui.widgets.entity_table import Row

__all__ = ["VhostsScreen"]


class VhostsScreen(EntityListScreen):
    NAV = "vhosts"
    RESOURCE = "vhosts"
    WHAT = "virtual host"
    COLUMNS = ("NAME", "SERVER NAMES", "UPSTREAMS", "ENABLED", "TLS", "ENTRY POINTS", "ID")

    async def _load(self) -> None:
        with contextlib.suppress(ApiError):  # upstream names; the list reports errors
            await self.nx.load("upstreams")
        await super()._load()

    def row(self, item: dict[str, Any]) -> Row:
        names = self.nx.names
        upstreams = sorted(
            {
                names.get(f"upstreams/{loc['upstream']}", str(loc["upstream"]))
                for loc in item.get("locations") or ()
                if isinstance(loc, dict) and loc.get("upstream")
            }
        )
        tls = (item.get("tls") or {}).get("mode", "off")
        enabled = bool(item.get("enabled", True))
        server_names = " ".join(item.get("server_names") or ())
        cells = (
            Text(str(item.get("name", "")), style="bold"),
            server_names,
            ", ".join(upstreams) or "-",
            Text("yes", style="green") if enabled else Text("no", style="dim"),
            str(tls),
            " ".join(item.get("entry_points") or ()),
            str(item.get("id", "")),
        )
        sort = (
            str(item.get("name", "")),
            server_names,
            ", ".join(upstreams),
            enabled,
            str(tls),
            " ".join(item.get("entry_points") or ()),
            str(item.get("id", "")),
        )
        return Row(str(item.get("id")), cells, sort)

    def form(self, item: dict[str, Any] | None) -> VhostFormScreen:
        return VhostFormScreen(item)
