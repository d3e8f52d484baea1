"""The Softwarecatalogus both ways, end to end (the real broker, database, projector, connector
runner and dispatcher; the OpenRegister fake on loopback, paged 2 objects a page).

One municipality's connector reads the catalogue into the hub; its gebruik changed and a
koppeling created in the hub are written to the catalogue as that municipality; the next read
publishes nothing (no echo), the catalogue's own objects brought in are not written back, and a
change made in the catalogue flows into the hub exactly once. A deletion on either side reaches
the other once and is not echoed back."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from hub.settings import ConnectorSettings, Settings
from tests.support.hub_api import eventually, landscape_event, publish, subscribe
from tests.support.openregister_fake import OpenRegisterFake
from tests.support.sink import WebhookSink

pytestmark = pytest.mark.e2e

ORG = "org-voorbeeldstad"  # the municipality's id in the hub
GEM, BUREN, LEV = (str(uuid.uuid4()) for _ in range(3))  # catalogue uuids
MODULE_A, MODULE_B = str(uuid.uuid4()), str(uuid.uuid4())
SYSTEEM = "urn:nld:oin:00000001001234567000:systeem:cmdb"
BIJGEWERKT = "nl.koppelhub.softwarecatalogus.bijgewerkt.v1"
ONGEWIJZIGD = "nl.koppelhub.softwarecatalogus.ongewijzigd.v1"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"connectors": ConnectorSettings(allow_networks=["127.0.0.1/32"])})


@pytest.fixture
async def catalogue() -> AsyncIterator[OpenRegisterFake]:
    fake = await OpenRegisterFake().start()
    fake.add(
        "organisatie", {"id": GEM, "naam": "Gemeente Voorbeeldstad", "type": "Gemeente"}, organisation=GEM
    )
    fake.add("organisatie", {"id": BUREN, "naam": "Gemeente Buren", "type": "Gemeente"}, organisation=BUREN)
    fake.add("organisatie", {"id": LEV, "naam": "Leverancier BV", "type": "Leverancier"}, organisation=LEV)
    for module in (MODULE_A, MODULE_B):
        fake.add("module", {"id": module, "naam": f"Module {module[:4]}", "aanbieder": LEV}, organisation=LEV)
    fake.add("gebruik", {"afnemer": BUREN, "module": MODULE_A, "status": "Gepland"}, organisation=BUREN)
    yield fake
    await fake.stop()


async def _status(client: httpx.AsyncClient, auth: dict[str, str], connector: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/connectors/{connector}", headers=auth)
    assert response.status_code == 200, response.text
    return dict(response.json()["status"])


async def _run(client: httpx.AsyncClient, auth: dict[str, str], connector: str) -> dict[str, Any]:
    """Run the connector now and wait for that run to end; its status after."""
    before = (await client.get(f"/api/v1/connectors/{connector}/runs", headers=auth)).json()["items"]
    assert (await client.post(f"/api/v1/connectors/{connector}/run", headers=auth)).status_code == 202

    async def ended() -> bool:
        runs = (await client.get(f"/api/v1/connectors/{connector}/runs", headers=auth)).json()["items"]
        return len(runs) > len(before) and runs[0]["finishedAt"] is not None

    await eventually(ended, what="the connector run")
    runs = (await client.get(f"/api/v1/connectors/{connector}/runs", headers=auth)).json()["items"]
    assert runs[0]["status"] == "succeeded", runs[0]
    return await _status(client, auth, connector)


async def _get(client: httpx.AsyncClient, auth: dict[str, str], path: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/{path}", headers=auth)
    assert response.status_code == 200, f"{path}: {response.text}"
    return dict(response.json())


async def test_the_catalogue_and_the_hub_stay_in_step_both_ways_without_echo(
    client: httpx.AsyncClient, auth: dict[str, str], catalogue: OpenRegisterFake, sink: WebhookSink
) -> None:
    gebruik = catalogue.add(
        "gebruik",
        {"afnemer": GEM, "module": MODULE_A, "status": "In productie", "versie": "1.0"},
        organisation=GEM,
    )
    koppeling = catalogue.add(
        "koppeling", {"moduleA": MODULE_A, "moduleB": MODULE_B, "type": "api"}, organisation=GEM
    )
    login = catalogue.user("voorbeeldstad", GEM)
    await subscribe(client, auth, sink.url, types=[BIJGEWERKT, ONGEWIJZIGD])
    config = {
        "url": catalogue.url,
        "auth": {"basic": login},
        "organisatie": GEM,
        "pageSize": 2,
        "writeBack": True,
    }
    created = await client.post(
        "/api/v1/connectors",
        json={"kind": "softwarecatalogus", "organisatie": ORG, "config": config, "scheduleSeconds": 3600},
        headers=auth,
    )
    assert created.status_code == 201, created.text
    connector = created.json()["id"]
    assert created.json()["config"]["auth"]["basic"]["password"] == "********"

    # 1. Catalogue → hub: 3 organisaties, its own gebruik and koppeling; not Buren's gebruik,
    # nor the supplier's modules (another organisation's objects).
    async def first_run() -> bool:
        return (await _status(client, auth, connector))["lastSuccessAt"] is not None

    await eventually(first_run, what="the first run (a new connector is due at once)")
    assert (await _status(client, auth, connector))["eventsPublished"] == 5

    async def projected() -> bool:
        return (await client.get(f"/api/v1/koppelingen/{koppeling}", headers=auth)).status_code == 200

    await eventually(projected, what="the landscape to hold what was read")  # the last one read
    assert (await _get(client, auth, f"gebruik/{gebruik}"))["afnemer"] == ORG
    assert (await _get(client, auth, f"koppelingen/{koppeling}"))["organisatie"] == ORG
    assert (await _get(client, auth, f"organisaties/{ORG}"))["naam"] == "Gemeente Voorbeeldstad"
    assert (await _get(client, auth, f"organisaties/{BUREN}"))["naam"] == "Gemeente Buren"
    # The list was read 2 a page in update order, each next page from the newest time read.
    first, second = [
        q for m, s, q, _ in catalogue.requests if m == "GET" and s == "organisatie" and "_fields" not in q
    ]
    assert (first["_limit"], first["_page"], first["_order[@self.updated]"]) == ("2", "1", "asc")
    assert "@self[updated][gte]" not in first
    assert second["@self[updated][gte]"] == catalogue.objects["organisatie"][BUREN]["@self"]["updated"]

    # 2. Hub → catalogue: the municipality's CMDB changes the gebruik and adds a koppeling.
    changed = {
        "id": gebruik,
        "afnemer": ORG,
        "applicatie": MODULE_A,
        "status": "Uit te faseren",
        "versie": "1.0",
    }
    added = {"id": str(uuid.uuid4()), "applicatieA": MODULE_B, "buitengemeentelijkeVoorziening": "BRP",
             "type": "digikoppeling", "organisatie": ORG}  # fmt: skip
    published = await publish(
        client,
        auth,
        landscape_event("gebruik", "vastgelegd", changed, source=SYSTEEM, organisatie=ORG),
        landscape_event("koppeling", "vastgelegd", added, source=SYSTEEM, organisatie=ORG),
    )
    assert published.status_code == 202, published.text

    writes = await catalogue.wait_writes(2)
    assert sorted((w.method, w.schema, w.id, w.user) for w in writes) == sorted(
        [("PUT", "gebruik", gebruik, "voorbeeldstad"), ("POST", "koppeling", added["id"], "voorbeeldstad")]
    )
    assert catalogue.objects["gebruik"][gebruik]["status"] == "Uit te faseren"
    assert catalogue.objects["gebruik"][gebruik]["afnemer"] == GEM  # the catalogue's own id
    assert catalogue.objects["koppeling"][added["id"]]["@self"]["organisation"] == GEM
    # Every derived gebruik/koppeling event was handled: the two read from the catalogue were
    # in step already (no write), the two changed here were written.
    outcomes = [r.json() for r in await sink.wait_for(4)]
    assert sorted((o["type"], o["subject"]) for o in outcomes) == sorted(
        [(ONGEWIJZIGD, gebruik), (ONGEWIJZIGD, koppeling), (BIJGEWERKT, gebruik), (BIJGEWERKT, added["id"])]
    )

    # 3. No echo: the next read finds what was written as what it last read.
    status = await _run(client, auth, connector)
    assert status["eventsPublished"] == 5
    assert len(catalogue.writes) == 2

    # 4. A change made in the catalogue reaches the hub, once, and is not written back.
    catalogue.change("gebruik", gebruik, versie="2.0")
    status = await _run(client, auth, connector)
    assert status["eventsPublished"] == 6
    asked = [
        q
        for m, s, q, _ in catalogue.requests
        if m == "GET" and s == "gebruik" and "_order[@self.updated]" in q
    ]
    asked = asked[-1]
    assert "@self[updated][gte]" in asked  # incremental: only what changed since the last run
    now = await _get(client, auth, f"gebruik/{gebruik}")
    assert (now["versie"], now["status"]) == ("2.0", "Uit te faseren")
    (outcome,) = [r.json() for r in (await sink.wait_for(5))[4:]]  # the marker: it was handled
    assert (outcome["type"], outcome["subject"]) == (ONGEWIJZIGD, gebruik)
    assert len(catalogue.writes) == 2
    assert (await _run(client, auth, connector))["eventsPublished"] == 6

    # 5. A koppeling deleted in the catalogue is withdrawn in the hub, once, and not deleted back.
    catalogue.delete("koppeling", koppeling)
    assert (await _run(client, auth, connector))["eventsPublished"] == 7

    async def withdrawn() -> bool:
        return (await client.get(f"/api/v1/koppelingen/{koppeling}", headers=auth)).status_code == 404

    await eventually(withdrawn, what="the koppeling deleted in the catalogue to leave the hub")
    (outcome,) = [r.json() for r in (await sink.wait_for(6))[5:]]  # its derived verwijderd, handled
    assert (outcome["type"], outcome["subject"], outcome["data"]["actie"]) == (ONGEWIJZIGD, koppeling, "geen")
    assert len(catalogue.writes) == 2
    assert (await _run(client, auth, connector))["eventsPublished"] == 7

    # 6. The hub withdraws the gebruik: it is deleted in the catalogue, and no sweep echoes it back.
    gone = landscape_event("gebruik", "ingetrokken", {"id": gebruik}, source=SYSTEEM, organisatie=ORG)
    assert (await publish(client, auth, gone)).status_code == 202
    deleted = await catalogue.wait_writes(3)
    assert (deleted[2].method, deleted[2].id) == ("DELETE", gebruik)
    (outcome,) = [r.json() for r in (await sink.wait_for(7))[6:]]
    assert (outcome["type"], outcome["data"]["actie"]) == (BIJGEWERKT, "verwijderd")
    assert (await _run(client, auth, connector))["eventsPublished"] == 7
    assert len(catalogue.writes) == 3
