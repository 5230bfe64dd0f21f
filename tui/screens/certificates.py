"""Certificates of the chosen workspace with their expiry; read-only (certificates come
from ACME or uploads, not from a form)."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from rich.text import Text

from tui.screens.entity_list import EntityListScreen
from tui.timefmt import expiry, parse_instant
from tui.widgets.entity_table import Row

__all__ = ["CertificatesScreen"]

STATUS_STYLES = {
    "valid": "green",
    "expiring": "bold yellow",
    "expired": "bold red",
    "not yet valid": "yellow",
    "pending": "dim",
}


class CertificatesScreen(EntityListScreen):
    NAV = "certificates"
    RESOURCE = "certificates"
    WHAT = "certificate"
    EDITABLE = False
    COLUMNS = ("NAME", "NAMES", "SOURCE", "STATUS", "EXPIRES", "NOT AFTER", "FINGERPRINT")

    def row(self, item: dict[str, Any]) -> Row:
        left, status = expiry(item.get("not_before"), item.get("not_after"), self.nx.clock())
        end = parse_instant(item.get("not_after"))
        names = " ".join(item.get("names") or ())
        fingerprint = str(item.get("fingerprint") or "-")
        cells = (
            Text(str(item.get("name", "")), style="bold"),
            names,
            str(item.get("source", "manual")),
            Text(status, style=STATUS_STYLES.get(status, "")),
            left,
            end.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if end else "-",
            fingerprint[:16] + ("…" if len(fingerprint) > 16 else ""),
        )
        sort = (
            str(item.get("name", "")),
            names,
            str(item.get("source", "")),
            status,
            end.timestamp() if end else None,
            end.timestamp() if end else None,
            fingerprint,
        )
        return Row(str(item.get("id")), cells, sort)

    def form(self, item: dict[str, Any] | None) -> Any:
        raise NotImplementedError("certificates are not edited in the console")
