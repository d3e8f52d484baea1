"""The generic ``rest`` write-back sink end to end (issue 13 §2): a ``rest`` connector with a
``writeBack`` section gets its internal subscription, and an event published to the hub is
projected, claimed by the dispatcher and sent to a target API on loopback as the configured
method, URL template and body mapping. A permanent 4xx ends the delivery as refused at once
with the target's reason; a 503 is retried on the schedule until it succeeds; order per key
holds through the retries (the real broker, database, projector and dispatcher)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from hub.settings import ConnectorSettings, Settings
from tests.support.hub_api import eventually, publish
from tests.support.rest_fake import RestFake
from tests.support.sink import Answer, Received, WebhookSink

pytestmark = pytest.mark.e2e

ORG = "org-voorbeeldstad"
PARTNER = "urn:nld:oin:00000009876543210000:systeem:zaaksysteem"
VERZOEK = "nl.zaken.status-verzoek.v1"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The connectors may reach the fakes on loopback."""
    return settings.model_copy(update={"connectors": ConnectorSettings(allow_networks=["127.0.0.1/32"])})


@pytest.fixture
async def source() -> AsyncIterator[RestFake]:
    """The connector's source side: an API with nothing to read (its runs publish nothing)."""
    f = await RestFake().start()
    yield f
    await f.stop()


def write_back(target: WebhookSink, **extra: Any) -> dict[str, Any]:
    """PATCH {target}/api/zaken/{subject}/status with the requested state and the event's id."""
    base = target.url.removesuffix("/hook")
    return {
        "types": [VERZOEK],
        "method": "PATCH",
        "url": base + "/api/zaken/{subject}/status",
        "body": {"status": "data.state", "toelichting": "data.text", "verzoek": "id"},
        "headers": {"X-Bron": "koppelhub"},
        **extra,
    }


async def rest_connector(
    client: httpx.AsyncClient, auth: dict[str, str], config: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/connectors",
        json={"kind": "rest", "organisatie": ORG, "config": config, "scheduleSeconds": 3600},
        headers=auth,
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def polling(source: RestFake, **config: Any) -> dict[str, Any]:
    """A source side (pass-through items from the fake) beside the write-back."""
    return {
        "url": f"{source.url}/none",
        "items": "results",
        "mapping": {"type": "nl.zaken.zaak.gewijzigd.v1", "fields": {"naam": "name"}},
        **config,
    }


def verzoek(zaak: str, state: str, text: str | None = None) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": PARTNER,
        "type": VERZOEK,
        "subject": zaak,
        "partitionkey": zaak,
        "organisatie": ORG,
        "datacontenttype": "application/json",
        "data": {"state": state, **({"text": text} if text is not None else {})},
    }


async def items(client: httpx.AsyncClient, auth: dict[str, str], path: str) -> list[dict[str, Any]]:
    """The ``items`` of a list endpoint (a delivery log, a connector's runs)."""
    response = await client.get(path, headers=auth)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def deliveries(
    client: httpx.AsyncClient, auth: dict[str, str], subscription: str
) -> list[dict[str, Any]]:
    return await items(client, auth, f"/api/v1/subscriptions/{subscription}/deliveries")


async def settled(
    client: httpx.AsyncClient, auth: dict[str, str], subscription: str, n: int
) -> list[dict[str, Any]]:
    """The delivery log once all ``n`` deliveries have an outcome (delivered or dead)."""
    log: list[dict[str, Any]] = []

    async def done() -> bool:
        nonlocal log
        log = await deliveries(client, auth, subscription)
        return len(log) == n and all(d["status"] in ("delivered", "dead") for d in log)

    await eventually(done, timeout=60, what=f"{n} write-back deliveries with an outcome")
    return log


async def test_a_published_event_reaches_the_target_as_the_configured_method_url_and_body(
    client: httpx.AsyncClient, auth: dict[str, str], source: RestFake, sink: WebhookSink
) -> None:
    connector = await rest_connector(client, auth, polling(source, writeBack=write_back(sink)))
    request = verzoek("zaak 7/a", "afgehandeld", "Klaar")

    assert (await publish(client, auth, request)).status_code == 202

    (got,) = await sink.wait_for(1)
    assert got.method == "PATCH"
    assert got.path == "/api/zaken/zaak%207%2Fa/status"  # the subject as one path segment
    assert got.json() == {"status": "afgehandeld", "toelichting": "Klaar", "verzoek": request["id"]}
    assert got.headers["X-Bron"] == "koppelhub"
    (delivery,) = await settled(client, auth, connector["writeBackSubscription"], 1)
    assert (delivery["status"], delivery["attempts"]) == ("delivered", 1)


async def test_a_permanent_4xx_from_the_target_ends_the_delivery_as_refused_without_a_retry(
    client: httpx.AsyncClient, auth: dict[str, str], source: RestFake
) -> None:
    def answer(n: int, got: Received) -> Answer:
        if got.json()["status"] == "onbekend":
            return 422, {"Content-Type": "application/json"}, '{"detail": "onbekende status"}'
        return 204

    target = await WebhookSink(responder=answer).start()
    try:
        # Retries would come after 0.1 s: a refusal that were retried would show before the marker.
        config = polling(source, writeBack=write_back(target, retrySchedule=[0.1] * 5))
        connector = await rest_connector(client, auth, config)
        refused, marker = verzoek("zaak-1", "onbekend"), verzoek("zaak-1", "in behandeling")

        assert (await publish(client, auth, refused)).status_code == 202
        subscription = connector["writeBackSubscription"]
        (delivery,) = await settled(client, auth, subscription, 1)
        # The marker for the same key comes after the refusal: its arrival proves the key moved on.
        assert (await publish(client, auth, marker)).status_code == 202
        await target.wait_for(1)
        log = await settled(client, auth, subscription, 2)
    finally:
        await target.stop()

    assert [r.json()["verzoek"] for r in target.received] == [refused["id"], marker["id"]]
    assert (delivery["status"], delivery["attempts"]) == ("dead", 1)
    # Why, in the delivery log: refused, the target's status and the start of its own answer.
    assert "refused" in delivery["lastError"] and "422" in delivery["lastError"]
    assert "onbekende status" in delivery["lastError"]
    assert {d["status"] for d in log} == {"dead", "delivered"}


async def test_a_503_is_retried_until_the_target_takes_it_and_order_per_key_holds(
    client: httpx.AsyncClient, auth: dict[str, str], source: RestFake
) -> None:
    down = True

    def answer(n: int, got: Received) -> Answer:
        return (503, {"Retry-After": "0"}) if down else 204

    target = await WebhookSink(responder=answer).start()
    try:
        config = polling(source, writeBack=write_back(target, retrySchedule=[0.3] * 40))
        connector = await rest_connector(client, auth, config)
        subscription = connector["writeBackSubscription"]
        requests = [
            verzoek("zaak-1", "ontvangen"),
            verzoek("zaak-2", "ontvangen"),
            verzoek("zaak-1", "in behandeling"),
            verzoek("zaak-2", "in behandeling"),
            verzoek("zaak-1", "afgehandeld"),
        ]

        assert (await publish(client, auth, *requests)).status_code == 202

        async def retried_while_down() -> bool:
            log = await deliveries(client, auth, subscription)
            return len(log) == 5 and any(d["attempts"] >= 2 and d["status"] == "failed" for d in log)

        await eventually(
            retried_while_down, timeout=60, what="write-backs retried while the target answers 503"
        )
        assert target.delivered == []
        down = False
        await target.wait_for(5, timeout=60)
        log = await settled(client, auth, subscription, 5)
    finally:
        await target.stop()

    assert {d["status"] for d in log} == {"delivered"}
    assert max(d["attempts"] for d in log) >= 2
    per_key = {
        zaak: [r.json()["status"] for r in target.delivered if r.path == f"/api/zaken/{zaak}/status"]
        for zaak in ("zaak-1", "zaak-2")
    }
    assert per_key == {
        "zaak-1": ["ontvangen", "in behandeling", "afgehandeld"],
        "zaak-2": ["ontvangen", "in behandeling"],
    }
    # Order per key: while a key's first request failed, its later ones were never sent; once it
    # went through, each later one was sent once, in order.
    for zaak, later in (("zaak-1", ["in behandeling", "afgehandeld"]), ("zaak-2", ["in behandeling"])):
        sent = [r.json()["status"] for r in target.received if r.path == f"/api/zaken/{zaak}/status"]
        tries = len(sent) - len(later)
        assert tries >= 2 and sent == ["ontvangen"] * tries + later


async def runs(
    client: httpx.AsyncClient, auth: dict[str, str], connector: dict[str, Any]
) -> list[dict[str, Any]]:
    return await items(client, auth, f"/api/v1/connectors/{connector['id']}/runs")


async def test_a_rest_connector_that_only_writes_back_delivers_and_is_never_run(
    client: httpx.AsyncClient, auth: dict[str, str], source: RestFake, sink: WebhookSink
) -> None:
    writes_only = await rest_connector(client, auth, {"writeBack": write_back(sink)})
    # The marker: a polling connector created after it, due as early; once its run finished,
    # the connectors role has had its chance to claim the other one too.
    marker = await rest_connector(client, auth, polling(source))

    async def marker_ran() -> bool:
        return any(r["finishedAt"] for r in await runs(client, auth, marker))

    await eventually(marker_ran, timeout=60, what="the polling connector's first run")
    request = verzoek("zaak-9", "afgehandeld")
    assert (await publish(client, auth, request)).status_code == 202
    (got,) = await sink.wait_for(1)

    assert (writes_only["polls"], writes_only["status"]["nextRunAt"]) == (False, None)
    assert await runs(client, auth, writes_only) == []
    shown = (await client.get(f"/api/v1/connectors/{writes_only['id']}", headers=auth)).json()
    assert (shown["polls"], shown["status"]["lastRunAt"], shown["status"]["nextRunAt"]) == (False, None, None)
    assert (got.method, got.path) == ("PATCH", "/api/zaken/zaak-9/status")
    assert got.json() == {"status": "afgehandeld", "verzoek": request["id"]}
    status = (await client.get("/api/v1/status", headers=auth)).json()
    assert status["connectors"]["queued"] == 0  # never counted as waiting for a run
    (delivery,) = await settled(client, auth, writes_only["writeBackSubscription"], 1)
    assert delivery["status"] == "delivered"
