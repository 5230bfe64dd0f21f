"""crdt/documents.py: layout, typed API, boundary conversions, merge semantics, durability."""

from __future__ import annotations

import contextlib
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map

from crdt.documents import (
    MESH_DOCUMENT,
    EntityMemo,
    MeshDocument,
    NotFound,
    UnknownKind,
    WorkspaceDocument,
    workspace_document,
)
from crdt.schema import (
    STAMP_FIELDS,
    AccessList,
    Certificate,
    Entity,
    Invalid,
    MeshSettings,
    Organization,
    SchemaError,
    StreamProxy,
    Upstream,
    VirtualHost,
    Workspace,
)
from crdt.store import PersistedDoc, Store
from tests.crdt.strategies import (
    access_list_dict,
    certificate_dict,
    stream_dict,
    upstream_dict,
    vhost_dict,
)


def _vhost(**over: Any) -> VirtualHost:
    return VirtualHost.model_validate(vhost_dict(**over))


def _upstream(**over: Any) -> Upstream:
    return Upstream.model_validate(upstream_dict(**over))


def _simple_vhost(ident: str, **over: Any) -> VirtualHost:
    data: dict[str, Any] = {
        "id": ident,
        "name": f"site {ident}",
        "server_names": [f"{ident}.example.com"],
        "locations": [{"path": "/", "action": "return", "status": 200}],
    }
    data.update(over)
    return VirtualHost.model_validate(data)


def _ws(client_id: int) -> WorkspaceDocument:
    return WorkspaceDocument(Doc(client_id=client_id))


def _sync(src: WorkspaceDocument | MeshDocument, dst: WorkspaceDocument | MeshDocument) -> None:
    """Anti-entropy: send ``dst`` what it lacks (state-vector delta)."""
    dst.doc.apply_update(src.doc.get_update(dst.doc.get_state()))


def _sync_all(*docs: WorkspaceDocument | MeshDocument) -> None:
    for a, b in itertools.permutations(docs, 2):
        _sync(a, b)


def _record(doc: Doc[Any]) -> list[bytes]:
    out: list[bytes] = []
    doc.observe(lambda e: out.append(bytes(e.update)))
    return out


# --- layout -------------------------------------------------------------------------------


def test_layout_collection_maps_of_entity_maps_of_fields() -> None:
    ws = _ws(1)
    vh = _vhost()
    fields = set(vh.model_dump()) - set(STAMP_FIELDS)  # a stamp only with an author
    assert ws.put(vh) == sorted(fields)
    root = ws.doc.get("virtual_hosts", type=Map)
    entity = root["web"]
    assert isinstance(entity, Map)
    assert set(entity.keys()) == fields
    # list-valued fields are whole JSON values, not nested shared types
    assert isinstance(entity["locations"], list)
    assert isinstance(entity["tls"], dict)
    assert ws.to_json()["virtual_hosts"]["web"]["name"] == "Public site"


def test_every_workspace_kind_round_trips_through_a_replica() -> None:
    a, b = _ws(1), _ws(2)
    entities: list[Entity] = [
        _upstream(),
        _vhost(),
        StreamProxy.model_validate(stream_dict()),
        Certificate.model_validate(certificate_dict()),
        AccessList.model_validate(access_list_dict()),
    ]
    for entity in entities:
        a.put(entity)
    _sync(a, b)
    for entity in entities:
        assert b.get(type(entity), entity.id) == entity
    state = b.snapshot()
    assert state.upstreams == {"app": entities[0]}
    assert state.virtual_hosts == {"web": entities[1]}
    assert b.read().invalid == []


def test_numbers_come_back_as_ints_through_the_boundary() -> None:
    a, b = _ws(1), _ws(2)
    a.put(_upstream())
    _sync(a, b)
    raw = b.doc.get("upstreams", type=Map)["app"]
    assert raw["keepalive"] == 32.0
    assert isinstance(raw["keepalive"], float)  # the pycrdt trap the boundary undoes
    up = b.get(Upstream, "app")
    assert isinstance(up, Upstream)
    assert type(up.keepalive) is int
    assert up.keepalive == 32
    assert type(up.servers[0].weight) is int
    assert type(up.servers[0].max_fails) is int


# --- the typed API ------------------------------------------------------------------------


def test_put_writes_only_changed_fields_and_small_updates() -> None:
    ws = _ws(1)
    ws.put(_vhost())
    updates = _record(ws.doc)
    assert ws.put(_vhost()) == []
    assert updates == []  # an unchanged put is no update at all
    assert ws.put(_vhost(description="now described")) == ["description"]
    assert len(updates) == 1
    assert len(updates[0]) < 100
    got = ws.get(VirtualHost, "web")
    assert isinstance(got, VirtualHost)
    assert got.description == "now described"


def test_create_assigns_fresh_ids_and_refuses_given_ones() -> None:
    ws = _ws(1)
    data = vhost_dict()
    del data["id"]
    one = ws.create(VirtualHost, data)
    two = ws.create(VirtualHost, data)
    assert one.id != two.id
    assert len(one.id) == 26
    assert ws.get(VirtualHost, one.id) == one
    with pytest.raises(SchemaError, match="id"):
        ws.create(VirtualHost, vhost_dict())
    with pytest.raises(SchemaError, match="server_names"):
        ws.create(VirtualHost, {**data, "server_names": []})
    assert len(ws.list(VirtualHost)[0]) == 2


def test_patch_validates_writes_named_fields_only() -> None:
    ws = _ws(1)
    ws.put(_vhost())
    updates = _record(ws.doc)
    got = ws.patch(VirtualHost, "web", {"proxy_read_timeout": "2m", "websocket": False})
    assert got.proxy_read_timeout == 120
    assert got.websocket is False
    assert len(updates) == 1
    assert ws.get(VirtualHost, "web") == got
    # the same values again: nothing written
    ws.patch(VirtualHost, "web", {"proxy_read_timeout": 120, "websocket": False})
    assert len(updates) == 1
    # invalid as a whole -> nothing written, fields named
    with pytest.raises(SchemaError, match=r"tls"):
        ws.patch(VirtualHost, "web", {"tls": {"mode": "manual"}})
    with pytest.raises(SchemaError, match="enabeld: is not a known field"):
        ws.patch(VirtualHost, "web", {"enabeld": False})
    with pytest.raises(SchemaError, match="id: cannot be changed"):
        ws.patch(VirtualHost, "web", {"id": "other"})
    with pytest.raises(NotFound, match="'nope' does not exist"):
        ws.patch(VirtualHost, "nope", {"name": "x"})
    assert len(updates) == 1


def test_a_memo_validates_only_what_changed_and_forgets_what_went() -> None:
    ws = _ws(1)
    for ident in ("a", "b", "c"):
        ws.put(_simple_vhost(ident))
    ws.doc.get("virtual_hosts", type=Map)["bad"] = Map({"id": "bad", "name": 7})
    memo = EntityMemo()
    first = ws.read(memo)
    ws.patch(VirtualHost, "b", {"name": "renamed"})
    ws.delete(VirtualHost, "c")
    second = ws.read(memo)

    plain = ws.read()
    assert second.state == plain.state, "a memo changes nothing in what is read"
    assert second.invalid == plain.invalid
    assert [i.id for i in second.invalid] == ["bad"]
    assert second.stored == ws.to_json(), "the collections as stored come with the read"
    vhosts_before, vhosts_after = first.state.virtual_hosts, second.state.virtual_hosts
    assert vhosts_after["a"] is vhosts_before["a"], "unchanged: not validated again"
    assert vhosts_after["b"].name == "renamed"
    assert vhosts_after["b"] is not vhosts_before["b"]
    assert "c" not in vhosts_after
    ws.put(_simple_vhost("c"))
    assert ws.read(memo).state.virtual_hosts["c"] is not vhosts_before["c"], "c was forgotten"


def test_delete() -> None:
    ws = _ws(1)
    ws.put(_vhost())
    assert ws.delete(VirtualHost, "web") is True
    assert ws.delete(VirtualHost, "web") is False
    assert ws.get(VirtualHost, "web") is None
    assert ws.list(VirtualHost) == ([], [])


def test_kinds_belong_to_their_document() -> None:
    ws, mesh = _ws(1), MeshDocument(Doc(client_id=2))
    with pytest.raises(UnknownKind):
        ws.put(Organization(id="acme", name="Acme"))
    with pytest.raises(UnknownKind):
        mesh.get(VirtualHost, "web")
    org = Organization(id="acme", name="Acme")
    mesh.put(org)
    mesh.put(Workspace(id="prod", organization="acme", name="Production"))
    assert mesh.list(Organization) == ([org], [])

    class Invite(Entity):
        COLLECTION = "invites"
        uses: int = 0

    extended = MeshDocument(mesh.doc, extra_kinds=[Invite])
    extended.put(Invite(id="inv1", uses=2))
    assert extended.get(Invite, "inv1") == Invite(id="inv1", uses=2)

    class Clash(Entity):
        COLLECTION = "workspaces"

    with pytest.raises(ValueError, match="share 'workspaces'"):
        MeshDocument(extra_kinds=[Clash])


# --- unknown fields and skip-and-report ---------------------------------------------------


def _newer_peer_writes(ws: WorkspaceDocument) -> None:
    """What a newer version would store: a higher schema version and fields we lack."""
    fields = {**_vhost().model_dump(mode="json"), "schema_version": 2}
    fields["rate_limit"] = {"rps": 10, "burst": 20}
    fields["tags"] = ["blue"]
    ws.doc.get("virtual_hosts", type=Map)["web"] = Map(fields)


def test_unknown_fields_are_kept_by_reads_puts_and_patches() -> None:
    ws = _ws(1)
    _newer_peer_writes(ws)
    got = ws.get(VirtualHost, "web")
    assert isinstance(got, VirtualHost)
    assert got.schema_version == 2
    assert got.unknown_fields() == {"rate_limit": {"rps": 10, "burst": 20}, "tags": ["blue"]}
    updates = _record(ws.doc)
    assert ws.put(got) == []  # re-putting what was read changes nothing
    assert updates == []
    ws.patch(VirtualHost, "web", {"description": "edited by an older node"})
    stored = ws.to_json()["virtual_hosts"]["web"]
    assert stored["description"] == "edited by an older node"
    assert stored["schema_version"] == 2
    # an entity from the API carries no extras: put replaces the known fields only
    ws.put(_vhost(name="From the API"))
    stored = ws.to_json()["virtual_hosts"]["web"]
    assert stored["rate_limit"] == {"rps": 10, "burst": 20}
    assert stored["tags"] == ["blue"]
    assert stored["description"] == ""
    assert stored["name"] == "From the API"
    assert stored["schema_version"] == 2  # an older writer never lowers the version


def test_invalid_entities_are_skipped_and_reported() -> None:
    peer, ws = _ws(9), _ws(1)
    ws.put(_simple_vhost("good"))
    root = peer.doc.get("virtual_hosts", type=Map)
    with peer.doc.transaction():
        root["badport"] = Map(
            {**_simple_vhost("badport").model_dump(mode="json"), "client_max_body_size": "huge"}
        )
        root["notamap"] = "just a string"
        root["mismatch"] = Map(_simple_vhost("other").model_dump(mode="json"))
        root["list"] = Array([1, 2])
        root["plain"] = _simple_vhost("plain").model_dump(mode="json")  # a plain JSON value
    _sync(peer, ws)
    good, bad = ws.list(VirtualHost)
    assert [v.id for v in good] == ["good", "plain"]
    assert {b.id: b.path for b in bad} == {
        "badport": "client_max_body_size",
        "notamap": "(entity)",
        "mismatch": "id",
        "list": "(entity)",
    }
    assert isinstance(ws.get(VirtualHost, "badport"), Invalid)
    read = ws.read()
    assert set(read.state.virtual_hosts) == {"good", "plain"}
    assert len(read.invalid) == 4
    # a patch can repair what a peer broke, and a put turns a plain value into a map
    fixed = ws.patch(VirtualHost, "badport", {"client_max_body_size": "1m"})
    assert ws.get(VirtualHost, "badport") == fixed
    ws.patch(VirtualHost, "plain", {"description": "now a map"})
    assert isinstance(ws.doc.get("virtual_hosts", type=Map)["plain"], Map)


# --- singleton settings -------------------------------------------------------------------


def test_settings_default_and_merge_per_field_even_when_first_written_concurrently() -> None:
    a, b = MeshDocument(Doc(client_id=1)), MeshDocument(Doc(client_id=2))
    assert a.settings() == MeshSettings()
    a.patch(MeshSettings, "settings", {"acme_contact": "ops@example.com"})
    b.patch(MeshSettings, "settings", {"worker_shutdown_timeout": "1m"})
    _sync_all(a, b)
    for doc in (a, b):
        s = doc.settings()
        assert isinstance(s, MeshSettings)
        assert s.acme_contact == "ops@example.com"
        assert s.worker_shutdown_timeout == 60
    assert a.to_json() == b.to_json()
    assert a.delete(MeshSettings, "settings") is True
    assert a.settings() == MeshSettings()


# --- concurrency semantics ----------------------------------------------------------------


def _deliver_in_every_order(docs: list[WorkspaceDocument], updates: list[bytes]) -> None:
    """Apply ``updates`` to every doc, each in a different order, with duplicates."""
    for i, doc in enumerate(docs):
        order = list(itertools.permutations(updates))[i % len(updates)]
        for update in (*order, *order[:1]):
            doc.doc.apply_update(update)


def _edit(doc: WorkspaceDocument, fn: Any) -> bytes:
    before = doc.doc.get_state()
    fn(doc)
    return doc.doc.get_update(before)


def test_concurrent_creations_both_exist() -> None:
    a, b = _ws(1), _ws(2)
    ua = _edit(a, lambda d: d.put(_simple_vhost("one")))
    ub = _edit(b, lambda d: d.put(_simple_vhost("two")))
    _deliver_in_every_order([a, b], [ua, ub])
    for doc in (a, b):
        assert [v.id for v in doc.list(VirtualHost)[0]] == ["one", "two"]


def test_concurrent_edits_of_different_fields_are_both_kept() -> None:
    a, b, c = _ws(1), _ws(2), _ws(3)
    a.put(_vhost())
    _sync_all(a, b, c)
    ua = _edit(a, lambda d: d.patch(VirtualHost, "web", {"description": "from a"}))
    ub = _edit(b, lambda d: d.patch(VirtualHost, "web", {"websocket": False}))
    uc = _edit(c, lambda d: d.patch(VirtualHost, "web", {"server_names": ["c.example.com"]}))
    _deliver_in_every_order([a, b, c], [ua, ub, uc])
    results = [d.get(VirtualHost, "web") for d in (a, b, c)]
    assert results[0] == results[1] == results[2]
    vh = results[0]
    assert isinstance(vh, VirtualHost)
    assert (vh.description, vh.websocket, vh.server_names) == ("from a", False, ("c.example.com",))


def test_concurrent_edits_of_one_field_higher_client_id_wins_not_the_later_write() -> None:
    low, high, mid = _ws(10), _ws(900), _ws(50)
    low.put(_vhost())
    _sync_all(low, high, mid)
    # ``high`` writes first, ``low`` a moment later: wall-clock order does not matter
    u_high = _edit(high, lambda d: d.patch(VirtualHost, "web", {"name": "written first"}))
    u_mid = _edit(mid, lambda d: d.patch(VirtualHost, "web", {"name": "written second"}))
    u_low = _edit(low, lambda d: d.patch(VirtualHost, "web", {"name": "written last"}))
    _deliver_in_every_order([low, high, mid], [u_low, u_high, u_mid])
    for doc in (low, high, mid):
        got = doc.get(VirtualHost, "web")
        assert isinstance(got, VirtualHost)
        assert got.name == "written first"  # client id 900
    # a list-valued field is replaced whole: never a mix of the two lists
    u_low = _edit(low, lambda d: d.patch(VirtualHost, "web", {"server_names": ["low.example"]}))
    u_high = _edit(
        high, lambda d: d.patch(VirtualHost, "web", {"server_names": ["high.example", "h2.ex"]})
    )
    _deliver_in_every_order([low, high], [u_low, u_high])
    for doc in (low, high):
        got = doc.get(VirtualHost, "web")
        assert isinstance(got, VirtualHost)
        assert got.server_names == ("high.example", "h2.ex")


def test_edit_vs_delete_delete_wins_on_every_replica() -> None:
    a, b = _ws(1), _ws(2)
    for who in ("low", "high"):
        a.put(_simple_vhost("web"))
        _sync_all(a, b)
        editor, deleter = (a, b) if who == "low" else (b, a)
        ue = _edit(editor, lambda d: d.patch(VirtualHost, "web", {"description": "edited"}))
        ud = _edit(deleter, lambda d: d.delete(VirtualHost, "web"))
        _deliver_in_every_order([a, b], [ue, ud])
        for doc in (a, b):
            assert doc.get(VirtualHost, "web") is None, who
        assert a.to_json() == b.to_json()


def test_same_id_created_twice_keeps_one_whole_entity_never_a_mix() -> None:
    """The trap create() avoids: a put of a new id on two peers at once."""
    a, b = _ws(1), _ws(2)
    ua = _edit(a, lambda d: d.put(_simple_vhost("web", description="from a", websocket=True)))
    ub = _edit(b, lambda d: d.put(_simple_vhost("web", name="from b")))
    _deliver_in_every_order([a, b], [ua, ub])
    results = {json.dumps(d.to_json(), sort_keys=True) for d in (a, b)}
    assert len(results) == 1
    got = a.get(VirtualHost, "web")
    assert isinstance(got, VirtualHost)
    assert got == _simple_vhost("web", name="from b")  # b's whole map; a's fields are gone


# --- durability: composed with PersistedDoc.commit ----------------------------------------


def test_edits_run_inside_persisted_commit_and_survive_a_reopen(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "state.db")
    assert MESH_DOCUMENT == "mesh"
    assert workspace_document("prod") == "workspace:prod"
    pd = PersistedDoc.open(store, workspace_document("prod"))
    vh, update = WorkspaceDocument.edit(
        pd, lambda ws: ws.create(VirtualHost, {k: v for k, v in vhost_dict().items() if k != "id"})
    )
    assert update is not None
    assert store.stats("workspace:prod").updates == 1
    changed, update2 = WorkspaceDocument.edit(
        pd, lambda ws: ws.patch(VirtualHost, vh.id, {"name": "Renamed"})
    )
    assert changed.name == "Renamed"
    assert update2 is not None
    assert len(update2) < 100
    # a refused edit writes nothing and persists nothing
    with pytest.raises(SchemaError):
        WorkspaceDocument.edit(pd, lambda ws: ws.patch(VirtualHost, vh.id, {"server_names": []}))
    _, nothing = WorkspaceDocument.edit(pd, lambda ws: ws.get(VirtualHost, vh.id))
    assert nothing is None
    assert store.stats("workspace:prod").updates == 2
    # a peer applies the broadcast updates
    peer = _ws(77)
    peer.doc.apply_update(update)
    peer.doc.apply_update(update2)
    assert peer.get(VirtualHost, vh.id) == changed
    store.close()

    with Store.open(tmp_path / "state.db") as reopened:
        again = PersistedDoc.open(reopened, "workspace:prod")
        assert WorkspaceDocument(again.doc).get(VirtualHost, vh.id) == changed


# --- property: convergence under reordering, duplicates and drops -------------------------

_IDS = ["v0", "v1", "v2", "v3"]
_NAMES = st.sampled_from(["alpha", "beta", "gamma"])
_PATCHES = st.one_of(
    st.fixed_dictionaries({"name": _NAMES}),
    st.fixed_dictionaries({"description": st.sampled_from(["", "d1", "d2"])}),
    st.fixed_dictionaries({"enabled": st.booleans()}),
    st.fixed_dictionaries({"websocket": st.booleans(), "client_max_body_size": st.integers(0, 5)}),
    st.fixed_dictionaries(
        {
            "server_names": st.lists(
                st.sampled_from(["a.ex", "b.ex", "c.ex"]), min_size=1, unique=True
            )
        }
    ),
)
_REPLICA = st.integers(0, 2)
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), _REPLICA, st.sampled_from(_IDS), _NAMES),
        st.tuples(st.just("patch"), _REPLICA, st.sampled_from(_IDS), _PATCHES),
        st.tuples(st.just("delete"), _REPLICA, st.sampled_from(_IDS)),
        st.tuples(st.just("keepalive"), _REPLICA, st.integers(0, 64)),
        # deliver message (index modulo the outbox) to a replica; some never are (drops)
        st.tuples(st.just("deliver"), _REPLICA, st.integers(0, 1000)),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=_OPS)
def test_replicas_converge_to_identical_documents_and_models(ops: list[tuple[Any, ...]]) -> None:
    replicas = [_ws(1), _ws(2), _ws(3)]
    replicas[0].put(_upstream())
    _sync_all(*replicas)
    outbox: list[bytes] = []
    for op in ops:
        kind, r = op[0], replicas[op[1]]
        if kind == "deliver":
            if outbox:
                r.doc.apply_update(outbox[op[2] % len(outbox)])
            continue
        before = r.doc.get_state()
        if kind == "put":
            r.put(_simple_vhost(op[2], name=op[3]))
        elif kind == "patch":
            with contextlib.suppress(NotFound):
                r.patch(VirtualHost, op[2], op[3])
        elif kind == "delete":
            r.delete(VirtualHost, op[2])
        else:
            r.patch(Upstream, "app", {"keepalive": op[2]})
        outbox.append(r.doc.get_update(before))
    _sync_all(*replicas)
    first = replicas[0]
    for other in replicas[1:]:
        assert other.to_json() == first.to_json()
        assert other.read() == first.read()
    read = first.read()
    assert read.invalid == []
    assert type(read.state.upstreams["app"].keepalive) is int
