"""Planning one TCP/UDP stream proxy."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from crdt.schema import StreamProxy, WorkspaceState
from render.access import AccessRuleLine, access_lines
from render.blocks import StreamBlock
from render.listens import check_listen, overlaps
from render.model import Listen
from render.upstreams import UpstreamPlan

__all__ = ["plan_stream"]


def plan_stream(
    unit: str,
    stream: StreamProxy,
    state: WorkspaceState,
    default_address: str,
    upstream: Callable[[str], UpstreamPlan],
    taken: dict[tuple[str, Listen], str],
    http_listens: Iterable[Listen],
) -> tuple[StreamBlock | None, list[str], str | None]:
    """(block, notes, skip reason). ``taken`` maps (protocol, listen) to the unit using
    it; the caller records this block's listen once it has rendered."""
    address = stream.address if stream.address is not None else default_address
    listen = check_listen(Listen(address, stream.port), f"stream {unit}")
    for (proto, other), owner in taken.items():
        if proto == stream.protocol and other == listen:
            return None, [], f"{stream.protocol} {address}:{stream.port} is already used by {owner}"
    if stream.protocol == "tcp":
        clash = next((lst for lst in http_listens if overlaps(lst, listen)), None)
        if clash is not None:
            return None, [], f"tcp port {stream.port} is already used by an HTTP entry point"
    plan = upstream(stream.upstream)
    notes: list[str] = []
    if not plan.usable:
        notes.append(
            f"upstream {stream.upstream} has no usable server ({'; '.join(plan.notes)});"
            " connections are closed at once"
        )
    elif plan.notes:
        notes.append(f"upstream {stream.upstream}: " + "; ".join(plan.notes))
    access: tuple[AccessRuleLine, ...] = ()
    if stream.access_list is not None:
        access = access_lines(state.access_lists[stream.access_list])
    block = StreamBlock(
        unit=unit,
        listen=listen,
        udp=stream.protocol == "udp",
        upstream=plan if plan.usable else None,
        access=access,
        connect_timeout=stream.connect_timeout,
        proxy_timeout=stream.proxy_timeout,
    )
    return block, notes, None
