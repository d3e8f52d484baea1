"""Issue 3's "done when": publish the landscape, read it back, hear exactly what changed, and
get the same state from a rebuild without anything sent twice."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import httpx
import pytest

from hub.bootstrap import HubProcess
from hub.cli_actor import os_user
from hub.settings import Settings
from tests.support.hub_api import SOURCE, eventually, landscape_event, publish, subscribe
from tests.support.sink import WebhookSink

pytestmark = pytest.mark.e2e

ORG = {"id": "org-1", "naam": "Gemeente Voorbeeldstad", "type": "Gemeente", "oin": "00000001001234567000"}
APP = {"id": "app-1", "naam": "Open Zaak", "aanbieder": "org-9", "licentietype": "Open source"}
USE = {
    "id": "use-1",
    "afnemer": "org-1",
    "applicatie": "app-1",
    "status": "Gepland",
    "interneAantekening": "geheim",
}
LINK = {"id": "k-1", "applicatieA": "app-1", "buitengemeentelijkeVoorziening": "BRP", "type": "digikoppeling"}
COLLECTIONS = [
    "organisaties",
    "applicaties",
    "gebruik",
    "koppelingen",
    "referentiecomponenten",
    "standaarden",
]


async def _everything(client: httpx.AsyncClient, auth: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    found = {}
    for collection in COLLECTIONS:
        response = await client.get(f"/api/v1/{collection}", params={"limit": 500}, headers=auth)
        assert response.status_code == 200
        found[collection] = response.json()["items"]
    return found


async def test_the_landscape_is_projected_announced_once_per_change_and_rebuilt_silently(
    client: httpx.AsyncClient, auth: dict[str, str], sink: WebhookSink, settings: Settings, hub: HubProcess
) -> None:
    sub = await subscribe(client, auth, sink.url, filters=[{"exact": {"source": settings.source_urn}}])

    created = await publish(
        client,
        auth,
        landscape_event("organisatie", "vastgelegd", ORG),
        landscape_event("applicatie", "vastgelegd", APP),
        landscape_event("gebruik", "vastgelegd", USE, sequence="0001"),
        landscape_event("koppeling", "vastgelegd", LINK),
    )
    assert created.status_code == 202, created.text
    announced = [r.json() for r in await sink.wait_for(4)]
    assert sorted(e["type"].split(".")[2:4] for e in announced) == [
        ["applicatie", "aangemaakt"], ["gebruik", "aangemaakt"], ["koppeling", "aangemaakt"],
        ["organisatie", "aangemaakt"],
    ]  # fmt: skip
    gebruik_event = next(e for e in announced if e["subject"] == "use-1")
    assert "interneAantekening" not in gebruik_event["data"]
    dataref = httpx.URL(gebruik_event["dataref"])
    assert dataref.path == "/api/v1/gebruik/use-1"

    read = await client.get(dataref.path, headers=auth)
    assert read.status_code == 200
    assert read.json()["status"] == "Gepland" and read.json()["interneAantekening"] == "geheim"  # admin
    assert read.json()["provenance"]["source"] == SOURCE and read.json()["provenance"]["sequence"] == "0001"

    # A status change, then an identical re-assertion and a stale one: one notification.
    changed = {**USE, "status": "In productie"}
    assert (
        await publish(client, auth, landscape_event("gebruik", "vastgelegd", changed, sequence="0003"))
    ).is_success
    gewijzigd = (await sink.wait_for(5))[4].json()
    assert gewijzigd["type"] == "nl.softwarecatalogus.gebruik.gewijzigd.v1"
    assert gewijzigd["data"]["wijzigingen"] == [{"field": "status", "old": "Gepland", "new": "In productie"}]
    quiet = await publish(
        client,
        auth,
        landscape_event("gebruik", "vastgelegd", changed, sequence="0004"),
        landscape_event("gebruik", "vastgelegd", USE, sequence="0002"),
    )
    assert quiet.status_code == 202

    withdrawn = await publish(client, auth, landscape_event("koppeling", "ingetrokken", {"id": "k-1"}))
    assert withdrawn.status_code == 202
    verwijderd = (await sink.wait_for(6))[5].json()
    assert (
        verwijderd["type"] == "nl.softwarecatalogus.koppeling.verwijderd.v1"
        and verwijderd["subject"] == "k-1"
    )
    assert (await client.get("/api/v1/koppelingen/k-1", headers=auth)).status_code == 404

    invalid = await publish(client, auth, landscape_event("gebruik", "vastgelegd", {**USE, "status": "Live"}))
    assert invalid.status_code == 400 and invalid.json()["errors"][0]["field"] == "data.status"

    landschap = (await client.get("/api/v1/organisaties/org-1/landschap", headers=auth)).json()
    assert landschap["organisatie"]["naam"] == "Gemeente Voorbeeldstad"
    assert [(g["gebruik"]["status"], g["applicatie"]["naam"]) for g in landschap["gebruik"]] == [
        ("In productie", "Open Zaak")
    ]

    # The stale event is the marker: it follows the identical one on the same key, and what a
    # projected event announces is queued in the transaction that projects it. Once it is
    # counted, the queue holds all there will be (the invalid one was refused at publish).
    assert hub.projector is not None
    projector = hub.projector

    async def stale_counted() -> bool:
        return projector.stats.stale >= 1

    await eventually(stale_counted, what="the stale event to be counted")
    assert projector.stats.stale == 1  # counted, not applied
    assert len(await _queued(client, auth, sub["id"])) == 6
    assert len(sink.received) == 6
    before = await _everything(client, auth)

    env = {k: v for k, v in os.environ.items() if not k.startswith("KOPPELHUB_")}
    env |= {
        "KOPPELHUB_DATABASE_URL": str(settings.database_url),
        "KOPPELHUB_DATA_DIR": str(settings.data_dir),
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "hub", "rebuild"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "rebuilt" in done.stdout
    trail = await client.get("/api/v1/audit", params={"action": "koppelhub rebuild"}, headers=auth)
    [rebuilt] = trail.json()["items"]
    assert (rebuilt["target"], rebuilt["outcome"], rebuilt["actor"]["credential"]) == (
        "landscape",
        "ok",
        f"cli:{os_user()}",
    )

    assert await _everything(client, auth) == before
    # The rebuild has committed and exited: anything it announced would be queued by now.
    assert len(await _queued(client, auth, sub["id"])) == 6
    assert len(sink.received) == 6


async def _queued(client: httpx.AsyncClient, auth: dict[str, str], sid: str) -> list[dict[str, Any]]:
    """Every delivery queued for the subscription, whatever its state."""
    response = await client.get(
        f"/api/v1/subscriptions/{sid}/deliveries", params={"limit": 500}, headers=auth
    )
    assert response.status_code == 200, response.text
    return list(response.json()["items"])
