"""Follow a node's watch stream for as long as the console runs, reconnecting by itself.

:func:`follow` reports the link (up after the stream's ``hello``, down with the reason
whenever it ends) and hands every event to the caller. After a drop it retries with a
short backoff, so a restarted daemon is picked up within about two seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from tui.client import ApiClient, ApiError

__all__ = ["Link", "follow"]

FIRST_RETRY = 0.25
MAX_RETRY = 2.0


@dataclass(frozen=True, slots=True)
class Link:
    """The state of the console's connection to the daemon."""

    up: bool
    node: str = ""
    """The node answering (from ``hello``) while up."""
    reason: str = ""
    """Why the link is down, in one line."""
    reconnected: bool = False
    """Up again after having been down."""


async def follow(
    client: ApiClient,
    on_event: Callable[[dict[str, Any]], None],
    on_link: Callable[[Link], None],
) -> NoReturn:
    """Read the watch stream forever; reconnect after every failure."""
    delay = FIRST_RETRY
    was_down = False
    while True:
        reason = "the daemon ended the watch stream"
        try:
            async for event in client.watch():
                if event.get("type") == "hello":
                    on_link(Link(True, node=str(event.get("node", "")), reconnected=was_down))
                    delay = FIRST_RETRY
                    was_down = False
                on_event(event)
                if event.get("type") == "overflow":
                    reason = "the console fell behind the watch stream; re-reading"
                    break
        except ApiError as exc:
            reason = exc.message
        on_link(Link(False, reason=reason))
        was_down = True
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_RETRY)
