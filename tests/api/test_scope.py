"""Narrowing a workspace to what an edit can affect finds exactly the problems the whole
workspace check finds (dangling references, stream clashes, HTTP-only upstreams...)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from crdt.schema import (
    AccessList,
    Certificate,
    Entity,
    MeshSettings,
    Problem,
    StreamProxy,
    Upstream,
    VirtualHost,
    WorkspaceState,
    validate_references,
)
from node.api.cache import State
from node.api.edits import Rules
from node.api.scope import affected

IDS = st.sampled_from(["a", "b", "c"])
MAYBE = st.none() | IDS


@st.composite
def upstream(draw: st.DrawFn, ident: str) -> Upstream:
    method = draw(st.sampled_from(["round_robin", "ip_hash", "hash"]))
    data: dict[str, Any] = {"id": ident, "name": ident, "method": method}
    data["servers"] = [{"address": "10.0.0.1:80"}]
    if method == "hash":
        data["hash_key"] = draw(st.sampled_from(["$remote_addr", "$request_uri"]))
    return Upstream.model_validate(data)


@st.composite
def vhost(draw: st.DrawFn, ident: str) -> VirtualHost:
    cert = draw(MAYBE)
    return VirtualHost.model_validate(
        {
            "id": ident,
            "name": ident,
            "server_names": [f"{ident}.test"],
            "entry_points": draw(st.sampled_from([["http"], ["https"], ["nope"]])),
            "tls": {"mode": "manual", "certificate": cert} if cert else {"mode": "off"},
            "locations": [{"path": "/", "upstream": draw(IDS)}],
            "access_list": draw(MAYBE),
        }
    )


@st.composite
def stream(draw: st.DrawFn, ident: str) -> StreamProxy:
    return StreamProxy.model_validate(
        {
            "id": ident,
            "name": ident,
            "port": draw(st.sampled_from([80, 5432])),
            "protocol": draw(st.sampled_from(["tcp", "udp"])),
            "upstream": draw(IDS),
            "access_list": draw(MAYBE),
        }
    )


def certificate(ident: str) -> st.SearchStrategy[Certificate]:
    return st.just(Certificate.model_validate({"id": ident, "name": ident, "names": ["x.test"]}))


def access_list(ident: str) -> st.SearchStrategy[AccessList]:
    return st.just(AccessList.model_validate({"id": ident, "name": ident}))


MAKERS = {
    "upstreams": upstream,
    "virtual_hosts": vhost,
    "streams": stream,
    "certificates": certificate,
    "access_lists": access_list,
}


@st.composite
def states(draw: st.DrawFn) -> State:
    out: State = {}
    for collection, make in MAKERS.items():
        chosen = draw(st.lists(IDS, unique=True))
        out[collection] = {i: draw(make(i)) for i in chosen}
    return out


def checker(state: State) -> list[Problem]:
    return validate_references(WorkspaceState(**state), MeshSettings())  # type: ignore[arg-type]


def keys(problems: list[Problem]) -> set[tuple[str, str, str, str]]:
    return {(p.collection, p.id, p.field, p.reason) for p in problems}


@settings(max_examples=400, deadline=None)
@given(before=states(), data=st.data())
def test_narrowed_checks_find_what_the_whole_check_finds(
    before: State, data: st.DataObject
) -> None:
    collection = data.draw(st.sampled_from(sorted(MAKERS)))
    ident = data.draw(IDS)
    new: Entity | None = data.draw(st.none() | MAKERS[collection](ident))
    items = dict(before[collection])
    if new is None:
        items.pop(ident, None)
    else:
        items[ident] = new
    after = {**before, collection: items}
    whole = Rules(checker, lambda _: before)
    narrowed = Rules(checker, lambda _: before, affected)
    expected = keys(whole.new_problems(before, after, collection, ident))
    assert keys(narrowed.new_problems(before, after, collection, ident)) == expected
