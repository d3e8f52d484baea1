"""Private fields (``interneAantekening``) never leave the hub for anyone but their owner:
not by push, not by pull, not by replay, whether a publisher or the hub's own CSV import
published them (issue 12, "Private fields leak")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.support.hub_api import eventually, landscape_event, publish, subscribe
from tests.support.sink import WebhookSink

pytestmark = pytest.mark.e2e

VASTGELEGD = "nl.softwarecatalogus.gebruik.vastgelegd.v1"
NOTE = "Contract loopt tot 2026-12-31"


async def test_an_inbound_gebruik_reaches_push_pull_and_replay_without_its_private_note(
    client: httpx.AsyncClient, auth: dict[str, str], sink: WebhookSink
) -> None:
    sub = await subscribe(client, auth, sink.url, types=[VASTGELEGD])
    before = datetime.now(UTC) - timedelta(seconds=1)
    data = {"id": "g-1", "afnemer": "gem-a", "applicatie": "app-1", "status": "In productie",
            "versie": "1.0", "interneAantekening": NOTE}  # fmt: skip
    response = await publish(client, auth, landscape_event("gebruik", "vastgelegd", data))
    assert response.status_code == 202, response.text

    [pushed] = await sink.wait_for(1)
    assert pushed.json()["data"]["versie"] == "1.0"
    assert "interneAantekening" not in pushed.json()["data"]

    url = f"/api/v1/subscriptions/{sub['id']}/events"

    async def pulled() -> bool:
        return len((await client.get(url, headers=auth)).json()["items"]) == 1

    await eventually(pulled, what="the event in the archive")
    [item] = (await client.get(url, headers=auth)).json()["items"]
    assert item["data"]["versie"] == "1.0" and "interneAantekening" not in item["data"]

    response = await client.post(
        f"/api/v1/subscriptions/{sub['id']}/replay", json={"since": before.isoformat()}, headers=auth
    )
    assert response.status_code == 202 and response.json()["count"] == 1
    replayed = (await sink.wait_for(2))[1]
    assert replayed.json()["id"] == pushed.json()["id"]
    assert "interneAantekening" not in replayed.json()["data"]
    assert NOTE not in repr([r.body for r in sink.received])
