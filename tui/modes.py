"""The console's top-level screens (Textual modes), each imported only when first shown:
start-up pays for the overview alone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.screen import Screen

__all__ = ["MODES"]


def _overview() -> Screen[Any]:
    from tui.screens.overview import OverviewScreen

    return OverviewScreen()


def _vhosts() -> Screen[Any]:
    from tui.screens.vhosts import VhostsScreen

    return VhostsScreen()


def _upstreams() -> Screen[Any]:
    from tui.screens.upstreams import UpstreamsScreen

    return UpstreamsScreen()


def _certificates() -> Screen[Any]:
    from tui.screens.certificates import CertificatesScreen

    return CertificatesScreen()


def _events() -> Screen[Any]:
    from tui.screens.events import EventsScreen

    return EventsScreen()


MODES: dict[str, Callable[[], Screen[Any]]] = {
    "overview": _overview,
    "vhosts": _vhosts,
    "upstreams": _upstreams,
    "certificates": _certificates,
    "events": _events,
}
"""Mode name (as in :data:`tui.widgets.nav_bar.SCREENS`) -> its screen."""
