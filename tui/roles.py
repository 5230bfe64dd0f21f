"""The caller's role as the API reports it, and what each role may do in the console.

``GET /v1/status`` names the caller's role (``api.caller.role``); a write refused with
403 later lowers it (the daemon's configuration may have changed).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum
from typing import Any

__all__ = ["Role", "role_of_status"]


class Role(IntEnum):
    """Ordered like the API's roles: each may do what the ones below it may."""

    none = 0
    viewer = 1
    operator = 2
    admin = 3

    @property
    def can_edit(self) -> bool:
        """Create, change and delete the content of workspaces."""
        return self >= Role.operator

    @property
    def can_admin(self) -> bool:
        """Invites, revocation, labels, workspaces."""
        return self >= Role.admin


def role_of_status(status: Mapping[str, Any]) -> Role:
    """The role ``GET /v1/status`` reports for the caller; viewer when it names none (an
    API that answered a GET lets us read, and writes will say what they need)."""
    api = status.get("api")
    caller = api.get("caller") if isinstance(api, dict) else None
    name = caller.get("role") if isinstance(caller, dict) else None
    try:
        return Role[str(name)]
    except KeyError:
        return Role.viewer
