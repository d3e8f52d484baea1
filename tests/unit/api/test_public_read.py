"""``KOPPELHUB_PUBLIC_READ`` on the in-memory app: without a token a bezoeker reads the
landscape's public fields (lists, objects, an organisation's landschap and its exports) and
nothing else; with the setting off (the default) every call without a token is a 401."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import pytest

from hub.ports import LoggedEvent
from hub.services.landscape import DerivedEvents
from hub.services.projection import apply_events
from schemas import validate_event
from tests.support.memory_app import MemoryApp

GEM_A = "gem-a"
PUBLIC = pytest.mark.parametrize("settings", [{"public_read": True}], indirect=True)
_offsets = itertools.count()


async def _gebruik(memory: MemoryApp) -> None:
    """One gebruik of gem-a with a private note, projected into the app's landscape."""
    event = validate_event({
        "specversion": "1.0", "id": "e-g1", "source": "urn:x", "subject": "g1",
        "type": "nl.softwarecatalogus.gebruik.vastgelegd.v1", "time": "2026-11-22T10:00:00Z",
        "datacontenttype": "application/json",
        "data": {"id": "g1", "afnemer": GEM_A, "applicatie": "app", "status": "In productie",
                 "interneAantekening": "contract loopt af"},
    })  # fmt: skip
    derive = DerivedEvents("urn:hub", lambda: "https://hub.example")
    await apply_events(memory.landscape, [LoggedEvent(event, 0, next(_offsets))], derive)


def _no_private(body: Any) -> bool:
    """Neither the private note nor its field (a CSV export keeps the column, empty)."""
    return "contract loopt af" not in str(body) and '"interneAantekening"' not in str(body)


@PUBLIC
async def test_a_bezoeker_reads_public_fields_without_a_token_and_never_private_ones(
    memory: MemoryApp, auth: dict[str, str]
) -> None:
    await _gebruik(memory)
    client = memory.client

    listed = await client.get("/api/v1/gebruik")
    one = await client.get("/api/v1/gebruik/g1")
    landschap = await client.get(f"/api/v1/organisaties/{GEM_A}/landschap")
    exported = await client.get(f"/api/v1/organisaties/{GEM_A}/landschap?format=csv")
    owner_view = await client.get("/api/v1/gebruik/g1", headers=auth)  # a token still sees all

    assert [r.status_code for r in (listed, one, landschap, exported)] == [200, 200, 200, 200]
    assert [i["id"] for i in listed.json()["items"]] == ["g1"]
    assert one.json()["afnemer"] == GEM_A
    assert [_no_private(r.text) for r in (listed, one, landschap, exported)] == [True] * 4, exported.text
    assert "contract loopt af" in owner_view.text


async def _management_calls(client: httpx.AsyncClient) -> list[httpx.Response]:
    return [
        await client.get("/api/v1/subscriptions"),
        await client.post("/api/v1/subscriptions", json={"sink": "https://x.example/hook"}),
        await client.get("/api/v1/tokens"),
        await client.get("/api/v1/audit"),
        await client.get("/api/v1/events?subscription=00000000-0000-0000-0000-000000000000"),
        await client.post("/api/v1/events", json=[]),
        await client.head("/api/v1/subscriptions"),
    ]


@PUBLIC
async def test_public_read_opens_nothing_but_the_landscape(memory: MemoryApp) -> None:
    answers = await _management_calls(memory.client)

    assert [r.status_code for r in answers] == [401] * len(answers)
    problems = [r for r in answers if r.request.method != "HEAD"]
    assert all(r.headers["content-type"] == "application/problem+json" for r in problems)
    assert all("Bearer" in r.json()["detail"] for r in problems)


async def test_without_public_read_a_landscape_read_without_a_token_is_refused(memory: MemoryApp) -> None:
    await _gebruik(memory)

    answers = [
        await memory.client.get("/api/v1/gebruik"),
        await memory.client.get("/api/v1/gebruik/g1"),
        await memory.client.get(f"/api/v1/organisaties/{GEM_A}/landschap"),
    ]

    assert [r.status_code for r in answers] == [401, 401, 401]


@PUBLIC
async def test_a_wrong_token_is_still_a_401_when_public_read_is_on(memory: MemoryApp) -> None:
    response = await memory.client.get("/api/v1/gebruik", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
