"""Softwarecatalogus events are validated at publish; other types pass through untouched
(on the in-memory app: the event log twin shows what was published)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from tests.support.memory_app import MemoryApp

SOURCE = "urn:nld:oin:00000001234567890000:systeem:leverancier"
BATCH = {"content-type": "application/cloudevents-batch+json"}


def gebruik_event(**data: Any) -> dict[str, Any]:
    body = {
        "id": "gebruik-1",
        "afnemer": "gemeente-a",
        "applicatie": "app-1",
        "status": "In productie",
        **data,
    }
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": SOURCE,
        "type": "nl.softwarecatalogus.gebruik.vastgelegd.v1",
        "subject": body["id"],
        "data": body,
    }


async def test_invalid_landscape_data_is_a_400_naming_event_and_field(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    batch = [gebruik_event(), gebruik_event(status="Live"), gebruik_event(afnemer=None)]
    response = await client.post("/api/v1/events", content=json.dumps(batch), headers={**auth, **BATCH})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    errors = response.json()["errors"]
    assert {(e["index"], e["field"]) for e in errors} == {(1, "data.status"), (2, "data.afnemer")}
    assert "In productie" in next(e["message"] for e in errors if e["field"] == "data.status")


async def test_valid_landscape_data_and_other_types_are_accepted(
    client: httpx.AsyncClient, auth: dict[str, str], memory: MemoryApp
) -> None:
    other = {**gebruik_event(), "type": "nl.gemeente.zaak.aangemaakt.v1", "data": {"anything": [1, 2]}}
    batch = [gebruik_event(), other]
    response = await client.post("/api/v1/events", content=json.dumps(batch), headers={**auth, **BATCH})
    assert response.status_code == 202, response.text
    assert len(memory.published()) == 2


def proposal_event(**data: Any) -> dict[str, Any]:
    body = {"afnemer": "gemeente-a", "applicatie": "app-1", "status": "In productie", **data}
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": SOURCE,
        "type": "nl.softwarecatalogus.gebruik.voorgesteld.v1",
        "subject": "app-1",
        "data": body,
    }


async def test_a_gebruik_proposal_is_accepted_and_published_as_it_is(
    client: httpx.AsyncClient, auth: dict[str, str], memory: MemoryApp
) -> None:
    response = await client.post(
        "/api/v1/events", content=json.dumps([proposal_event()]), headers={**auth, **BATCH}
    )
    assert response.status_code == 202, response.text
    assert len(memory.published()) == 1


async def test_an_invalid_gebruik_proposal_is_a_400_naming_each_field(
    client: httpx.AsyncClient, auth: dict[str, str], memory: MemoryApp
) -> None:
    bad = [proposal_event(applicatie=None), proposal_event(status="Live"), proposal_event(afnemr="x")]
    response = await client.post("/api/v1/events", content=json.dumps(bad), headers={**auth, **BATCH})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    fields = {(e["index"], e["field"]) for e in response.json()["errors"]}
    assert fields == {(0, "data.applicatie"), (1, "data.status"), (2, "data.afnemr")}
    assert memory.published() == []
