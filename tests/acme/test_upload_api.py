"""Manual certificates through the API (in process, real store and vault): an uploaded key
pair becomes a certificate entity whose key is sealed, never returned, replaced with a
fresh reference and dropped with the certificate; bad pairs are refused by field."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio
from pycrdt import Map

from crdt.documents import workspace_document
from crdt.vault import SEALED
from node.acme import plan, records
from tests.api.support import Served, seed, start
from tests.render.pki import TestCA


@pytest.fixture
async def api(tmp_path: Path, nursery: trio.Nursery) -> Served:
    return await start(nursery, tmp_path)


@pytest.fixture
async def client(api: Served) -> AsyncIterator[httpx.AsyncClient]:
    async with api.client() as c:
        yield c


def _sealed(api: Served, ws: str) -> dict[str, bytes]:
    persisted = api.services.document(workspace_document(ws))
    assert persisted is not None
    return {k: bytes(v) for k, v in persisted.doc.get(SEALED, type=Map).items()}


async def test_an_uploaded_pair_is_sealed_and_never_returned(
    api: Served, client: httpx.AsyncClient
) -> None:
    _, ws = await seed(client)
    ca = TestCA.create()
    crt, key = ca.issue(["manual.example.test", "www.manual.example.test"])
    chain = crt.decode() + ca.pem.decode()
    r = await client.post(
        f"/v1/workspaces/{ws}/certificates/key-pair",
        json={"name": "site", "certificate": chain, "key": key.decode()},
    )
    assert r.status_code == 201, r.text
    cert = r.json()
    assert cert["names"] == ["manual.example.test", "www.manual.example.test"]
    assert cert["source"] == "manual"
    assert cert["chain_pem"].count("BEGIN CERTIFICATE") == 2
    assert "PRIVATE KEY" not in r.text
    assert r.headers["location"].endswith(cert["id"])
    sealed = _sealed(api, ws)
    assert list(sealed) == [cert["key_ref"]]
    assert key not in sealed[cert["key_ref"]]
    assert api.services.seal_secret is not None
    opened = api.services._vault(ws).get(cert["key_ref"])
    assert opened == key
    # A vhost can use it; its status says when it expires.
    status = (await client.get(f"/v1/workspaces/{ws}/certificates/{cert['id']}/status")).json()
    assert status["source"] == "manual"
    assert 0 < status["expires_in"] <= 2 * 86400
    assert status["acme"] is None

    # Replacing the pair: a new key reference, the old sealed key dropped.
    crt2, key2 = ca.issue(["manual.example.test"])
    r = await client.put(
        f"/v1/workspaces/{ws}/certificates/{cert['id']}/key-pair",
        json={"certificate": crt2.decode(), "key": key2.decode()},
    )
    assert r.status_code == 200, r.text
    replaced = r.json()
    assert replaced["name"] == "site"
    assert replaced["key_ref"] != cert["key_ref"]
    assert replaced["names"] == ["manual.example.test"]
    assert list(_sealed(api, ws)) == [replaced["key_ref"]]

    # Deleting the certificate deletes its sealed key.
    assert (
        await client.delete(f"/v1/workspaces/{ws}/certificates/{cert['id']}")
    ).status_code == 204
    assert _sealed(api, ws) == {}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ("other key", "key"),
        ("not pem", "certificate"),
        ("encrypted", "key"),
    ],
)
async def test_unusable_pairs_are_refused_by_field(
    api: Served, client: httpx.AsyncClient, change: str, field: str
) -> None:
    _, ws = await seed(client)
    ca = TestCA.create()
    crt, key = ca.issue(["bad.example.test"])
    body = {"name": "bad", "certificate": crt.decode(), "key": key.decode()}
    if change == "other key":
        body["key"] = ca.issue(["bad.example.test"])[1].decode()
    elif change == "not pem":
        body["certificate"] = "hello"
    else:
        from cryptography.hazmat.primitives import serialization

        loaded = serialization.load_pem_private_key(key, password=None)
        body["key"] = loaded.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        ).decode()
    before = api.snapshot()
    r = await client.post(f"/v1/workspaces/{ws}/certificates/key-pair", json=body)
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == [field]
    assert api.snapshot() == before  # nothing written, nothing sealed


async def test_renewal_is_for_acme_certificates_in_use(
    api: Served, client: httpx.AsyncClient
) -> None:
    _, ws = await seed(client)
    ca = TestCA.create()
    crt, key = ca.issue(["m.example.test"])
    manual = (
        await client.post(
            f"/v1/workspaces/{ws}/certificates/key-pair",
            json={"name": "m", "certificate": crt.decode(), "key": key.decode()},
        )
    ).json()
    r = await client.post(f"/v1/workspaces/{ws}/certificates/{manual['id']}/renew")
    assert r.status_code == 409
    assert "manual" in r.json()["detail"]
    # An ACME certificate of a tls: acme vhost's names: the request lands in the document.
    vhost = {
        "name": "a",
        "server_names": ["a.example.test"],
        "entry_points": ["http", "https"],
        "tls": {"mode": "acme"},
        "locations": [{"path": "/", "action": "return", "status": 204}],
    }
    created = await client.post(f"/v1/workspaces/{ws}/vhosts", json=vhost)
    assert created.status_code == 201, created.text
    acme = {"name": "a-acme", "names": ["a.example.test"], "source": "acme"}
    acme_id = (await client.post(f"/v1/workspaces/{ws}/certificates", json=acme)).json()["id"]
    r = await client.post(f"/v1/workspaces/{ws}/certificates/{acme_id}/renew")
    assert r.status_code == 202, r.text
    subject = plan.subject_id(["a.example.test"])
    assert r.json()["subject"] == subject
    doc = api.services.document(workspace_document(ws))
    assert doc is not None
    assert subject in doc.doc.get(records.RENEW, type=Map)
    listing = (await client.get(f"/v1/workspaces/{ws}/acme")).json()["items"]
    assert [s["subject"] for s in listing] == [subject]
    assert listing[0]["state"] == "pending"
    assert listing[0]["renewal_requested"] == pytest.approx(r.json()["requested_at"])
