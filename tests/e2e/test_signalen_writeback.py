"""Write-back to Signalen end to end: a signalen connector with ``writeBack`` gets its internal
subscription, a partner's ``status-verzoek`` published to the hub reaches the Signalen fake
along the workflow through the dispatcher, and the outcome comes back to the partner as an
event (the real broker, database and dispatcher; the fake on loopback)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from hub.bootstrap import HubProcess
from hub.settings import ConnectorSettings, Settings
from tests.support.hub_api import eventually, publish, subscribe
from tests.support.signalen_fake import SignalenFake
from tests.support.sink import WebhookSink

pytestmark = pytest.mark.e2e

ORG = "org-voorbeeldstad"
PARTNER = "urn:nld:oin:00000009876543210000:systeem:moon"
VERZOEK = "nl.signalen.melding.status-verzoek.v1"
BIJGEWERKT = "nl.signalen.melding.status-bijgewerkt.v1"
GEWEIGERD = "nl.signalen.melding.status-geweigerd.v1"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The connectors may reach the fake on loopback."""
    return settings.model_copy(update={"connectors": ConnectorSettings(allow_networks=["127.0.0.1/32"])})


@pytest.fixture
async def fake() -> AsyncIterator[SignalenFake]:
    f = await SignalenFake(retry_after=0).start()
    yield f
    await f.stop()


async def _connector(
    client: httpx.AsyncClient, auth: dict[str, str], fake: SignalenFake, **extra: Any
) -> dict[str, Any]:
    """A signalen connector that writes back; its source side runs once an hour."""
    config = {"url": fake.url, "auth": {"token": fake.token}, "writeBack": True, **extra}
    response = await client.post(
        "/api/v1/connectors",
        json={"kind": "signalen", "organisatie": ORG, "config": config, "scheduleSeconds": 3600},
        headers=auth,
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def verzoek(melding: int, state: str, text: str | None = None, **data: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": PARTNER,
        "type": VERZOEK,
        "subject": str(melding),
        "organisatie": ORG,
        "datacontenttype": "application/json",
        "data": {"state": state, **({"text": text} if text is not None else {}), **data},
    }


async def _outcomes(client: httpx.AsyncClient, auth: dict[str, str], sink: WebhookSink) -> None:
    await subscribe(client, auth, sink.url, types=[BIJGEWERKT, GEWEIGERD])


async def _deliveries(
    client: httpx.AsyncClient, auth: dict[str, str], subscription: str
) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/subscriptions/{subscription}/deliveries", headers=auth)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def test_a_connector_with_write_back_gets_an_internal_subscription_for_its_organisations_verzoeken(
    client: httpx.AsyncClient, auth: dict[str, str], fake: SignalenFake
) -> None:
    connector = await _connector(client, auth, fake)

    sub = await client.get(f"/api/v1/subscriptions/{connector['writeBackSubscription']}", headers=auth)

    assert sub.status_code == 200, sub.text
    body = sub.json()
    assert body["sink"] == f"connector:{connector['id']}"
    assert body["types"] == [VERZOEK]
    assert {"exact": {"organisatie": ORG}} in body["filters"]


async def test_a_verzoek_from_m_to_closure_requested_patches_i_then_closure_requested_without_email(
    client: httpx.AsyncClient, auth: dict[str, str], fake: SignalenFake, sink: WebhookSink
) -> None:
    (melding,) = fake.add(1, state="m")
    await _connector(client, auth, fake)
    await _outcomes(client, auth, sink)
    request = verzoek(melding, "closure requested", "Opgepakt door de aannemer")

    assert (await publish(client, auth, request)).status_code == 202

    (got,) = await sink.wait_for(1)
    outcome = got.json()
    assert outcome["type"] == BIJGEWERKT and outcome["subject"] == str(melding)
    assert outcome["data"]["verzoek"] == request["id"]
    assert (outcome["data"]["from"], outcome["data"]["to"], outcome["data"]["via"]) == (
        "m",
        "closure requested",
        ["i"],
    )
    assert [(p.state, p.send_email) for p in fake.patches] == [("i", False), ("closure requested", False)]
    assert fake.meldingen[melding].state == "closure requested"


async def test_a_verzoek_the_workflow_forbids_never_reaches_signalen_and_comes_back_as_geweigerd(
    client: httpx.AsyncClient, auth: dict[str, str], fake: SignalenFake, sink: WebhookSink
) -> None:
    (closed,) = fake.add(1, state="o")
    connector = await _connector(client, auth, fake)
    await _outcomes(client, auth, sink)
    request = verzoek(closed, "b")

    assert (await publish(client, auth, request)).status_code == 202

    (got,) = await sink.wait_for(1)  # the outcome is the marker: the request was handled
    outcome = got.json()
    assert outcome["type"] == GEWEIGERD and outcome["data"]["verzoek"] == request["id"]
    assert (outcome["data"]["from"], outcome["data"]["requested"]) == ("o", "b")
    assert outcome["data"]["reason"]
    assert fake.patches == []

    # The outcome event is published while the delivery is applied; its record is written just
    # after, so the log is read until the delivery has left `pending`.
    async def recorded() -> bool:
        return any(d["status"] != "pending" for d in await _deliveries(client, auth, subscription))

    subscription = connector["writeBackSubscription"]
    await eventually(recorded, what="the refused write-back recorded in the delivery log")
    (delivery,) = await _deliveries(client, auth, subscription)
    assert (delivery["status"], delivery["attempts"]) == ("dead", 1)  # refused for good: not retried
    assert "refused" in delivery["lastError"]


async def test_while_signalen_is_down_write_backs_wait_and_arrive_after_it_recovers_in_order_per_melding(
    client: httpx.AsyncClient, auth: dict[str, str], fake: SignalenFake, sink: WebhookSink
) -> None:
    first, second = fake.add(2, state="m")
    connector = await _connector(client, auth, fake, writeBack={"retrySchedule": [0.3] * 40})
    await _outcomes(client, auth, sink)
    fake.down = True
    requests = [verzoek(first, "i"), verzoek(second, "ingepland"), verzoek(first, "b"), verzoek(second, "b")]

    assert (await publish(client, auth, *requests)).status_code == 202

    async def failed_while_down() -> bool:
        log = await _deliveries(client, auth, connector["writeBackSubscription"])
        return len(log) == 4 and any(d["attempts"] >= 2 and d["status"] == "failed" for d in log)

    await eventually(failed_while_down, what="write-backs retried while Signalen is down")
    assert fake.patches == []
    fake.down = False

    received = await sink.wait_for(4, timeout=60)
    assert {r.json()["type"] for r in received} == {BIJGEWERKT}
    per_melding = {m: [p.state for p in fake.patches if p.melding == m] for m in (first, second)}
    assert per_melding == {first: ["i", "b"], second: ["ingepland", "b"]}
    assert all(p.status == 200 for p in fake.patches)


async def test_turning_write_back_off_deletes_the_internal_subscription(
    client: httpx.AsyncClient, auth: dict[str, str], fake: SignalenFake, hub: HubProcess
) -> None:
    connector = await _connector(client, auth, fake)

    response = await client.patch(
        f"/api/v1/connectors/{connector['id']}", json={"config": {"writeBack": False}}, headers=auth
    )

    assert response.status_code == 200, response.text
    assert response.json()["writeBackSubscription"] is None
    gone = await client.get(f"/api/v1/subscriptions/{connector['writeBackSubscription']}", headers=auth)
    assert gone.status_code == 404
