"""Which part of a workspace an edit can affect, so reference checks stay cheap.

Checking every reference of a 10,000-host workspace on each edit costs tens of
milliseconds. An edit of one entity can only change the problems of:

- a virtual host: that host (its upstreams, certificate, access list, entry points);
- a stream: the streams (their ports clash with each other);
- an upstream, certificate or access list: the hosts and streams that refer to it.

:func:`affected` narrows a workspace to that part; the problems an edit introduces are
the same on the narrowed workspace as on the whole (tests/api/test_scope.py checks it).
"""

from __future__ import annotations

from typing import Any

from node.api.cache import State

__all__ = ["affected"]


def _vhost_refers(vh: Any, collection: str, ident: str) -> bool:
    if collection == "upstreams":
        return any(loc.upstream == ident for loc in vh.locations)
    if collection == "certificates":
        return bool(vh.tls.certificate == ident)
    return bool(vh.access_list == ident)


def _stream_refers(st: Any, collection: str, ident: str) -> bool:
    if collection == "upstreams":
        return bool(st.upstream == ident)
    return collection == "access_lists" and st.access_list == ident


def affected(state: State, collection: str, ident: str) -> State:
    """``state`` narrowed to what an edit of ``collection``/``ident`` can affect."""
    vhosts = state.get("virtual_hosts", {})
    streams = state.get("streams", {})
    if collection == "virtual_hosts":
        return {
            **state,
            "virtual_hosts": {ident: vhosts[ident]} if ident in vhosts else {},
            "streams": {},
        }
    if collection == "streams":
        return {**state, "virtual_hosts": {}}
    if collection in ("upstreams", "certificates", "access_lists"):
        return {
            **state,
            "virtual_hosts": {
                k: v for k, v in vhosts.items() if _vhost_refers(v, collection, ident)
            },
            "streams": {k: s for k, s in streams.items() if _stream_refers(s, collection, ident)},
        }
    return state
