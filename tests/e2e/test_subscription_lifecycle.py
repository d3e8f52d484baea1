"""Subscription life cycle: pause and resume in order, 410 and re-enable, days of failure, alerts.

The ``settings`` fixture retries after 0.2, 0.4 and 0.8 s (±20 %); sinks are real local servers.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from hub.bootstrap import HubProcess
from hub.settings import Settings
from tests.e2e.test_delivery_outcomes import deliveries, publish, wait_for_status
from tests.support.hub_api import MARKER, TYPE, event, eventually, subscribe
from tests.support.sink import WebhookSink

pytestmark = pytest.mark.e2e

ALERT_TYPES = ["nl.koppelhub.delivery.dead.v1", "nl.koppelhub.subscription.disabled.v1"]


async def patch(client: httpx.AsyncClient, auth: dict[str, str], sid: str, **body: Any) -> dict[str, Any]:
    response = await client.patch(f"/api/v1/subscriptions/{sid}", json=body, headers=auth)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def status_of(client: httpx.AsyncClient, auth: dict[str, str], sid: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/subscriptions/{sid}", headers=auth)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_a_paused_subscription_keeps_its_deliveries_queued_and_resume_sends_them_in_order(
    client: httpx.AsyncClient, auth: dict[str, str], sink: WebhookSink
) -> None:
    sub = await subscribe(client, auth, sink.url, types=[TYPE])
    paused = await patch(client, auth, sub["id"], enabled=False)
    assert (paused["status"], paused["enabled"]) == ("paused", False)
    witness = await WebhookSink().start()
    try:
        await subscribe(client, auth, witness.url, types=[MARKER])
        sent = [event("key-1", n) for n in range(5)] + [event("key-2", n) for n in range(5, 8)]
        await publish(client, auth, *sent)
        await wait_for_status(client, auth, sub["id"], "pending", count=len(sent))
        await publish(client, auth, event("marker", type=MARKER))
        await witness.wait_for(1)
    finally:
        await witness.stop()
    assert sink.received == [], "a paused subscription was delivered to"

    resumed = await patch(client, auth, sub["id"], enabled=True)
    assert (resumed["status"], resumed["statusReason"]) == ("active", None)
    await sink.wait_for(len(sent))
    per_key: dict[str, list[int]] = {}
    for got in sink.delivered:
        per_key.setdefault(got.json()["subject"], []).append(got.json()["data"]["n"])
    assert per_key == {"key-1": [0, 1, 2, 3, 4], "key-2": [5, 6, 7]}


async def test_re_enabling_after_a_410_delivers_the_event_that_got_the_410_and_everything_queued_since(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    gone = True
    sink = await WebhookSink(responder=lambda n, r: 410 if gone else 204).start()
    witness = await WebhookSink().start()
    try:
        sub = await subscribe(client, auth, sink.url, types=[TYPE])
        await subscribe(client, auth, witness.url, types=[MARKER])
        first = event("key-1", 0)
        await publish(client, auth, first)
        await eventually(
            lambda: _status_is(client, auth, sub["id"], "disabled"),
            what="the 410 to disable the subscription",
        )
        current = await status_of(client, auth, sub["id"])
        assert "410" in current["statusReason"]
        later = [event("key-1", 1), event("key-1", 2)]
        await publish(client, auth, *later)
        await wait_for_status(client, auth, sub["id"], "pending", count=2)
        await publish(client, auth, event("marker", type=MARKER))
        await witness.wait_for(1)
        assert len(sink.received) == 1, "a disabled subscription was delivered to"

        gone = False
        await patch(client, auth, sub["id"], enabled=True)
        await sink.wait_for(3)
        assert [r.json()["id"] for r in sink.delivered] == [first["id"]] + [e["id"] for e in later]
        await wait_for_status(client, auth, sub["id"], "delivered", count=3)
    finally:
        await sink.stop()
        await witness.stop()


async def _status_is(client: httpx.AsyncClient, auth: dict[str, str], sid: str, status: str) -> bool:
    return bool((await status_of(client, auth, sid))["status"] == status)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A long schedule (nothing goes dead) and a one-second failure period."""
    delivery = settings.delivery.model_copy(
        update={"retry_schedule": [0.2] * 40, "disable_after_seconds": 1.0}
    )
    return settings.model_copy(update={"delivery": delivery})


async def test_a_subscription_failing_for_the_whole_period_is_disabled_keeps_its_queue_and_alerts(
    client: httpx.AsyncClient, auth: dict[str, str], hub: HubProcess, sink: WebhookSink
) -> None:
    failing = await WebhookSink(responder=lambda n, r: 500).start()
    try:
        alerts = await subscribe(client, auth, sink.url, types=ALERT_TYPES)
        sub = await subscribe(client, auth, failing.url, types=[TYPE])
        sent = event("key-1", 0)
        await publish(client, auth, sent)
        await eventually(
            lambda: _status_is(client, auth, sub["id"], "disabled"), what="the subscription disabled"
        )
        current = await status_of(client, auth, sub["id"])
        assert "failed attempts" in current["statusReason"]
        [pending] = await deliveries(client, auth, sub["id"])
        assert pending["status"] == "failed", "the pending delivery was not kept"

        [alert] = await sink.wait_for(1)
        body = alert.json()
        assert body["type"] == "nl.koppelhub.subscription.disabled.v1"
        assert body["source"] == hub.settings.source_urn
        assert body["subject"] == sub["id"]
        assert body["data"]["subscriptionId"] == sub["id"]
        assert alerts["id"] != sub["id"]
    finally:
        await failing.stop()


async def test_deleting_a_subscription_while_its_deliveries_are_in_flight_does_not_stop_the_dispatcher(
    client: httpx.AsyncClient, auth: dict[str, str], hub: HubProcess
) -> None:
    arrived = asyncio.Event()
    slow = WebhookSink(delay=1.5)  # answers 1.5 s after a request arrives
    original = slow._handle

    in_flight = {"now": 0}

    async def noting(request: Any) -> Any:
        if request.method != "POST":
            return await original(request)
        arrived.set()
        in_flight["now"] += 1
        try:
            return await original(request)
        finally:
            in_flight["now"] -= 1

    async def all_answered() -> bool:
        return in_flight["now"] == 0

    slow._handle = noting  # type: ignore[method-assign]  # before start(): the route binds it
    await slow.start()
    witness = await WebhookSink().start()
    try:
        sub = await subscribe(client, auth, slow.url)
        await publish(client, auth, *(event(f"key-{n}", n) for n in range(5)))
        await asyncio.wait_for(arrived.wait(), 20)  # attempts are in flight now
        response = await client.delete(f"/api/v1/subscriptions/{sub['id']}", headers=auth)
        assert response.status_code == 204
        # The in-flight attempts end; the witness below is claimed after their outcomes.
        await eventually(all_answered, what="the in-flight attempts to be answered")
        await subscribe(client, auth, witness.url)
        await publish(client, auth, event("key-9", 9))
        await witness.wait_for(1)
        assert hub.dispatcher is not None and hub.dispatcher.running
    finally:
        await slow.stop()
        await witness.stop()
