"""publiccode.yml end to end: a ``publiccode`` connector made through the API reads a supplier's
files from loopback, and the landscape then shows its applicaties with the right aanbieder; the
``usedBy`` name of a municipality in the landscape (its exact naam, no alias configured) reaches
a subscriber as a gebruik proposal, and stays a proposal (no gebruik is projected from it)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from connectors.publiccode.mapping import applicatie_id
from hub.settings import ConnectorSettings, Settings
from tests.support.hub_api import eventually, publish, subscribe
from tests.support.publiccode_fake import PubliccodeFake
from tests.support.sink import WebhookSink

pytestmark = pytest.mark.e2e

ORG = "org-voorbeeldstad"
UTRECHT = "gm0344"
CMDB = "urn:nld:oin:00000001001234567000:systeem:cmdb"
VOORGESTELD = "nl.softwarecatalogus.gebruik.voorgesteld.v1"


def landscape(objecttype: str, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": CMDB,
        "type": f"nl.softwarecatalogus.{objecttype}.vastgelegd.v1",
        "subject": data["id"],
        "data": data,
        **extra,
    }


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"connectors": ConnectorSettings(allow_networks=["127.0.0.1/32"])})


@pytest.fixture
async def fake() -> AsyncIterator[PubliccodeFake]:
    f = await PubliccodeFake().start()
    yield f
    await f.stop()


async def _items(client: httpx.AsyncClient, auth: dict[str, str], collection: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/{collection}", params={"limit": 500}, headers=auth)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def test_a_suppliers_publiccode_files_become_its_applicaties_and_usedby_stays_a_proposal(
    client: httpx.AsyncClient, auth: dict[str, str], fake: PubliccodeFake, sink: WebhookSink
) -> None:
    utrecht = {"id": UTRECHT, "naam": "Gemeente Utrecht", "type": "Gemeente"}
    assert (await publish(client, auth, landscape("organisatie", utrecht))).status_code == 202

    async def known() -> bool:
        return any(o["id"] == UTRECHT for o in await _items(client, auth, "organisaties"))

    await eventually(known, timeout=60, what="the municipality in the landscape")
    await subscribe(client, auth, sink.url, types=[VOORGESTELD])
    repository = f"{fake.url}/open-zaak/open-zaak"
    fake.fixture("open-zaak.v0.7.yml", "/open-zaak/open-zaak/-/raw/HEAD/publiccode.yml", url=repository)
    config = {"urls": [repository, fake.fixture("signalen-lib.v0.4.yml")]}
    created = await client.post(
        "/api/v1/connectors",
        json={"kind": "publiccode", "organisatie": ORG, "config": config, "scheduleSeconds": 3600},
        headers=auth,
    )
    assert created.status_code == 201, created.text
    connector = created.json()["id"]

    async def ran() -> bool:
        runs = await client.get(f"/api/v1/connectors/{connector}/runs", headers=auth)
        return any(r["status"] == "succeeded" for r in runs.json()["items"])

    await eventually(ran, timeout=60, what="the connector's first run")
    app = applicatie_id(repository)
    (delivered,) = await sink.wait_for(1, timeout=60)
    proposal = delivered.json()
    assert (proposal["type"], proposal["data"]["afnemer"], proposal["data"]["applicatie"]) == (
        VOORGESTELD,
        UTRECHT,
        app,
    )
    # A marker in the proposal's partition (its key is the applicatie id), published after it.
    marker_data = {"id": "marker-gebruik", "afnemer": ORG, "applicatie": app, "status": "Gepland"}
    marker = landscape("gebruik", marker_data, partitionkey=app)
    assert (await publish(client, auth, marker)).status_code == 202

    async def projected() -> bool:
        return any(g["id"] == "marker-gebruik" for g in await _items(client, auth, "gebruik"))

    await eventually(projected, timeout=60, what="the marker gebruik")
    organisaties = {o["naam"]: o for o in await _items(client, auth, "organisaties")}
    applicaties = {a["naam"]: a for a in await _items(client, auth, "applicaties")}
    assert {n: (o["type"], o.get("website")) for n, o in organisaties.items()} == {
        "Gemeente Utrecht": ("Gemeente", None),
        "Maykin Media": ("Leverancier", "https://www.maykinmedia.nl"),
        "Datapunt Amsterdam": ("Leverancier", None),
    }
    assert applicaties["Open Zaak"]["id"] == app
    assert applicaties["Open Zaak"]["aanbieder"] == organisaties["Maykin Media"]["id"]
    details = ("licentie", "versie", "ontwikkelstatus", "website")
    assert [applicaties["Open Zaak"][d] for d in details] == [
        "EUPL-1.2",
        "1.17.0",
        "stable",
        "https://openzaak.org",
    ]
    assert applicaties["signals-client"]["aanbieder"] == organisaties["Datapunt Amsterdam"]["id"]
    assert applicaties["signals-client"]["type"] == "Component"
    assert [g["id"] for g in await _items(client, auth, "gebruik")] == ["marker-gebruik"]
