"""The sources an organisation's OIN or KvK number names are its own, through the API: publish
reads them through the token service's cache (``hub.api.events``), and a systeem token may not
register them. On the in-memory app; the rules themselves are in tests/unit/test_publish_ownership.py."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.adapters.memory import InMemoryProjectionStore
from hub.ports import LoggedEvent
from hub.services.projection import apply_events
from schemas import validate_event
from tests.support.connector_app import ADMIN_AUTH, connector_app
from tests.support.connector_app import ConnectorApp as App

OIN_A, OIN_B = "00000001001234567000", "00000001009876543000"
STRUCTURED = {"content-type": "application/cloudevents+json"}


def gebruik(source: str, afnemer: str) -> dict[str, object]:
    return {
        "specversion": "1.0", "id": str(uuid.uuid4()), "source": source,
        "type": "nl.softwarecatalogus.gebruik.vastgelegd.v1", "subject": f"g-{afnemer}",
        "data": {"id": f"g-{afnemer}", "afnemer": afnemer, "applicatie": "app", "status": "In productie"},
    }  # fmt: skip


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    landscape = InMemoryProjectionStore()
    organisaties = [
        {"id": "gem-a", "naam": "Gemeente A", "type": "Gemeente", "oin": OIN_A},
        {"id": "gem-b", "naam": "Gemeente B", "type": "Gemeente", "oin": OIN_B},
    ]
    events = [
        validate_event(
            {
                "specversion": "1.0",
                "id": data["id"],
                "source": "urn:nld:beheer",
                "subject": data["id"],
                "type": "nl.softwarecatalogus.organisatie.vastgelegd.v1",
                "data": data,
            }
        )
        for data in organisaties
    ]
    await apply_events(landscape, [LoggedEvent(e, 0, n) for n, e in enumerate(events)], None)
    async with connector_app(tmp_path, landscape=landscape) as made:
        yield made


async def test_publishing_under_another_organisations_oin_is_a_403(app: App) -> None:
    gem_a = {**await app.bearer("gem-a"), **STRUCTURED}
    taken = await app.http.post(
        "/api/v1/events", json=gebruik(f"URN:NLD:OIN:{OIN_B}:systeem:zaken", "gem-a"), headers=gem_a
    )
    assert taken.status_code == 403, taken.text
    [error] = taken.json()["errors"]
    assert error["field"] == "source" and "gem-b" in error["message"] and "OIN" in error["message"]

    own = await app.http.post(
        "/api/v1/events", json=gebruik(f"urn:nld:oin:{OIN_A}:systeem:zaken", "gem-a"), headers=gem_a
    )
    assert own.status_code == 202, own.text
    admin = await app.http.post(
        "/api/v1/events",
        json=gebruik(f"urn:nld:oin:{OIN_B}:systeem:zaken", "gem-b"),
        headers={**ADMIN_AUTH, **STRUCTURED},
    )
    assert admin.status_code == 202, admin.text


async def test_a_systeem_token_for_another_organisations_oin_is_a_400(app: App) -> None:
    body = {"name": "zaken", "role": "systeem", "organisatie": "gem-a", "sources": [f"urn:nld:oin:{OIN_B}"]}
    refused = await app.http.post("/api/v1/tokens", json=body, headers=ADMIN_AUTH)
    assert refused.status_code == 400, refused.text
    assert "gem-b" in refused.text
    mine = {**body, "sources": [f"urn:nld:oin:{OIN_A}:systeem:zaken"]}
    created = await app.http.post("/api/v1/tokens", json=mine, headers=ADMIN_AUTH)
    assert created.status_code == 201, created.text
