"""The author stamp of an edit made through the API: this node, the caller's user name
(from the uid the kernel reported), the caller's role, and the wall-clock time."""

from __future__ import annotations

import pwd
import time

from starlette.requests import Request

from crdt.schema import Stamp
from node.api.access import peer_of, role_of
from node.api.context import context_of

__all__ = ["stamp_of", "user_name"]

_NAMES_TTL = 60.0
_names: dict[int, tuple[str, float]] = {}


def user_name(uid: int) -> str:
    """The uid's login name, or ``uid 1234`` when it has none (looked up at most once a
    minute per uid: the lookup may go to a directory service)."""
    now = time.monotonic()
    cached = _names.get(uid)
    if cached is not None and cached[1] > now:
        return cached[0]
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = f"uid {uid}"
    if not name or len(name) > 64 or not name.isprintable():
        name = f"uid {uid}"
    if len(_names) > 1024:
        _names.clear()
    _names[uid] = (name, now + _NAMES_TTL)
    return name


def stamp_of(request: Request) -> Stamp:
    """Who is making this request through this node, now."""
    peer = peer_of(request.scope)
    role = role_of(request.scope)
    user = user_name(peer.uid) if peer is not None else "unknown"
    node = context_of(request).services.node_name
    return Stamp.now(node, user, role.name if role is not None else "none")
