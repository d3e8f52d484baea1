"""Connectors belong to an organisation (issue 12, "Ownership"): a gebruik-beheerder creates,
reads, changes, runs and deletes its own organisation's connectors only; another
organisation's is a 404 (its existence is not revealed), the list shows only its own, and
creating one for another organisation is a 403 naming the role and the right it lacks. On the
app wired with in-memory twins and API tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from hub.adapters.egress import egress
from hub.adapters.memory import (
    InMemoryConnectorStore,
    InMemoryConnectorTables,
    InMemoryDatabase,
    InMemoryEventLog,
    InMemoryProjectionStore,
    InMemoryRunStore,
    InMemorySubscriptionStore,
    InMemoryTokenStore,
)
from hub.api.app import create_app
from hub.api.auth import ADMIN, TokenAuthenticator
from hub.api.context import ApiContext
from hub.services.connectors import ConnectorContexts
from hub.services.tokens import TokenLookup, TokenService
from hub.settings import ConnectorSettings, Settings
from subscriptions.ssrf import NetworkPolicy

TOKEN = "test-admin-token"
ADMIN_AUTH = {"Authorization": f"Bearer {TOKEN}"}
SOURCE = {"url": "http://127.0.0.1:9/zaken", "mapping": {"type": "nl.zaken.zaak.gewijzigd.v1", "fields": {}}}


async def _ready() -> dict[str, bool]:
    return {"database": True}


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, TokenService]]:
    settings = Settings(
        data_dir=tmp_path, admin_token=TOKEN, connectors=ConnectorSettings(allow_networks=["127.0.0.1/32"])
    )
    tables, tokens = InMemoryConnectorTables(), InMemoryTokenStore()
    service = TokenService(tokens)
    ctx = ApiContext(
        settings=settings,
        event_log=InMemoryEventLog(),
        subscriptions=InMemorySubscriptionStore(InMemoryDatabase()),
        landscape=InMemoryProjectionStore(),
        network_policy=NetworkPolicy.parse("127.0.0.1/32"),
        auth=TokenAuthenticator(TOKEN, tokens=TokenLookup(tokens)),
        readiness=_ready,
        connectors=InMemoryConnectorStore(tables),
        runs=InMemoryRunStore(tables),
        connector_context=ConnectorContexts(
            settings.connectors, tmp_path, egress(NetworkPolicy.parse("127.0.0.1/32"))
        ),
        tokens=service,
    )
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as http:
        yield http, service


async def _beheerder(
    tokens: TokenService, organisatie: str, role: str = "gebruik-beheerder"
) -> dict[str, str]:
    _, secret = await tokens.create(ADMIN, name=f"{role} {organisatie}", role=role, organisatie=organisatie,
                                    sources=[])  # fmt: skip
    return {"Authorization": f"Bearer {secret}"}


def _connector(organisatie: str) -> dict[str, object]:
    return {"kind": "rest", "organisatie": organisatie, "scheduleSeconds": 3600, "enabled": False,
            "config": SOURCE}  # fmt: skip


async def test_a_municipality_manages_only_its_own_connectors_and_never_learns_of_anothers(
    app: tuple[httpx.AsyncClient, TokenService],
) -> None:
    http, tokens = app
    beheer_a, beheer_b = await _beheerder(tokens, "gem-a"), await _beheerder(tokens, "gem-b")
    raadpleger_a = await _beheerder(tokens, "gem-a", "gebruik-raadpleger")
    made_a = await http.post("/api/v1/connectors", json=_connector("gem-a"), headers=beheer_a)
    made_b = await http.post("/api/v1/connectors", json=_connector("gem-b"), headers=beheer_b)
    assert (made_a.status_code, made_b.status_code) == (201, 201), made_a.text
    path_a = f"/api/v1/connectors/{made_a.json()['id']}"

    for_another = await http.post("/api/v1/connectors", json=_connector("gem-a"), headers=beheer_b)
    assert for_another.status_code == 403
    assert "gebruik-beheerder" in for_another.json()["detail"] and "gem-a" in for_another.json()["detail"]
    not_allowed = await http.get("/api/v1/connectors", headers=raadpleger_a)
    assert not_allowed.status_code == 403
    detail = not_allowed.json()["detail"]
    assert "gebruik-raadpleger" in detail and "lacks the right externe-koppelingen-beheren" in detail

    hidden = [
        await http.get(path_a, headers=beheer_b),
        await http.patch(path_a, json={"enabled": True}, headers=beheer_b),
        await http.post(f"{path_a}/run", headers=beheer_b),
        await http.get(f"{path_a}/runs", headers=beheer_b),
        await http.delete(path_a, headers=beheer_b),
    ]
    assert [r.status_code for r in hidden] == [404] * len(hidden), [r.text for r in hidden]
    assert all("gem-a" not in r.text for r in hidden)

    listed_b = (await http.get("/api/v1/connectors", headers=beheer_b)).json()["items"]
    listed_a = (await http.get("/api/v1/connectors?organisatie=gem-b", headers=beheer_a)).json()["items"]
    everything = (await http.get("/api/v1/connectors", headers=ADMIN_AUTH)).json()["items"]
    assert [c["id"] for c in listed_b] == [made_b.json()["id"]]
    assert [c["id"] for c in listed_a] == [made_a.json()["id"]]  # a filter cannot reach another's
    assert {c["id"] for c in everything} == {made_a.json()["id"], made_b.json()["id"]}

    assert (await http.patch(path_a, json={"scheduleSeconds": 600}, headers=beheer_a)).status_code == 200
    assert (await http.delete(path_a, headers=beheer_a)).status_code == 204
