"""Private fields in an organisation's exports (issue 12: "not in deliveries, pull, replay,
exports or the DLQ view of another organisation"): the landschap as JSON, CSV and XLSX carries
the private note for the owning organisation's roles and the functioneel-beheerder, and for no
other organisation's, whatever its role; AMEFF never does. On the in-memory app, API tokens."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import openpyxl
import pytest

from hub.adapters.memory import (
    InMemoryDatabase,
    InMemoryEventLog,
    InMemoryProjectionStore,
    InMemorySubscriptionStore,
    InMemoryTokenStore,
)
from hub.api.app import create_app
from hub.api.auth import ADMIN, TokenAuthenticator
from hub.api.context import ApiContext
from hub.ports import LoggedEvent
from hub.services.landscape import DerivedEvents
from hub.services.projection import apply_events
from hub.services.tokens import TokenLookup, TokenService
from schemas import validate_event
from subscriptions.ssrf import NetworkPolicy
from tests.support.memory_app import memory_settings

GEM_A, NOTE = "gem-a", "contract loopt af"
FORMATS = ("json", "csv", "xlsx", "ameff")
#: (role, organisatie) -> whether it may see gem-a's private note
CALLERS = {
    ("functioneel-beheerder", None): True,
    ("gebruik-beheerder", GEM_A): True,
    ("gebruik-raadpleger", GEM_A): True,
    ("gebruik-beheerder", "gem-b"): False,
    ("gebruik-raadpleger", "gem-b"): False,
    ("aanbod-beheerder", GEM_A): False,
    ("vng-raadpleger", "vng"): False,
}


async def _ready() -> dict[str, bool]:
    return {"api": True}


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, TokenService]]:
    tokens = InMemoryTokenStore()
    landscape = InMemoryProjectionStore()
    event = validate_event({
        "specversion": "1.0", "id": "e-g1", "source": "urn:x", "subject": "g1",
        "type": "nl.softwarecatalogus.gebruik.vastgelegd.v1", "time": "2026-11-22T10:00:00Z",
        "datacontenttype": "application/json",
        "data": {"id": "g1", "afnemer": GEM_A, "applicatie": "app", "status": "In productie",
                 "interneAantekening": NOTE},
    })  # fmt: skip
    await apply_events(landscape, [LoggedEvent(event, 0, 0)], DerivedEvents("urn:hub", lambda: "https://hub"))
    settings = memory_settings(tmp_path)
    ctx = ApiContext(
        settings=settings,
        event_log=InMemoryEventLog(),
        subscriptions=InMemorySubscriptionStore(InMemoryDatabase()),
        landscape=landscape,
        network_policy=NetworkPolicy.parse("127.0.0.1/32"),
        auth=TokenAuthenticator(settings.admin_token or "", tokens=TokenLookup(tokens)),
        readiness=_ready,
        tokens=TokenService(tokens, landscape=landscape),
    )
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
        yield client, TokenService(tokens, landscape=landscape)


def _text(response: httpx.Response, fmt: str) -> str:
    if fmt != "xlsx":
        return response.text
    book = openpyxl.load_workbook(io.BytesIO(response.content), read_only=True)
    return " ".join(str(c) for sheet in book for row in sheet.iter_rows(values_only=True) for c in row)


async def test_an_export_carries_the_private_note_for_its_owner_only(
    app: tuple[httpx.AsyncClient, TokenService],
) -> None:
    client, tokens = app
    seen: dict[tuple[str, str | None], list[bool]] = {}
    for role, organisatie in CALLERS:
        _, secret = await tokens.create(ADMIN, name=role, role=role, organisatie=organisatie, sources=[])
        bearer = {"Authorization": f"Bearer {secret}"}
        found = []
        for fmt in FORMATS:
            params = {} if fmt == "json" else {"format": fmt}
            exported = await client.get(
                f"/api/v1/organisaties/{GEM_A}/landschap", params=params, headers=bearer
            )
            assert exported.status_code == 200, (role, organisatie, fmt, exported.text)
            found.append(NOTE in _text(exported, fmt))
        seen[(role, organisatie)] = found
    # AMEFF maps no private field at all; JSON, CSV and XLSX carry it for the owner only
    assert seen == {caller: [sees, sees, sees, False] for caller, sees in CALLERS.items()}
