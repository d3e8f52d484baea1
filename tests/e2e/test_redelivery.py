"""Dead letters and manual redelivery, replay of a time window, and pull of missed events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.e2e.test_delivery_outcomes import ATTEMPTS, deliveries, publish, wait_for_status
from tests.support.hub_api import MARKER, SOURCE, TYPE, event, eventually, subscribe
from tests.support.sink import WebhookSink

pytestmark = pytest.mark.e2e


async def test_a_dead_delivery_retried_by_an_operator_is_sent_again_and_delivered(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    healthy = False
    sink = await WebhookSink(responder=lambda n, r: 204 if healthy else 500).start()
    try:
        sub = await subscribe(client, auth, sink.url)
        sent = event()
        await publish(client, auth, sent)
        [dead] = await wait_for_status(client, auth, sub["id"], "dead")
        healthy = True
        response = await client.post(
            f"/api/v1/subscriptions/{sub['id']}/deliveries/{dead['id']}/retry", headers=auth
        )
        assert response.status_code == 202, response.text
        [done] = await wait_for_status(client, auth, sub["id"], "delivered")
        assert done["id"] == dead["id"] and done["attempts"] == ATTEMPTS + 1
        log = await client.get(
            f"/api/v1/subscriptions/{sub['id']}/deliveries/{dead['id']}/attempts", headers=auth
        )
        attempts = log.json()["items"]
        assert [a["attempt"] for a in attempts] == list(range(1, ATTEMPTS + 2))
        assert [a["statusCode"] for a in attempts] == [500] * ATTEMPTS + [204]
        assert attempts[0]["error"] == "http_500" and attempts[0]["durationMs"] >= 0
        assert [r.json()["id"] for r in sink.delivered] == [sent["id"]]
        assert len({r.headers["webhook-id"] for r in sink.received}) == 1
    finally:
        await sink.stop()


async def test_replay_redelivers_every_matching_event_of_the_window_and_counts_them(
    client: httpx.AsyncClient, auth: dict[str, str], sink: WebhookSink
) -> None:
    sub = await subscribe(client, auth, sink.url, filters=[{"prefix": {"subject": "app-"}}])
    before = datetime.now(UTC) - timedelta(seconds=1)
    matching = [event("app-1", 1), event("app-2", 2)]
    await publish(client, auth, event("other-1", 0), *matching)
    await sink.wait_for(2)
    response = await client.post(
        f"/api/v1/subscriptions/{sub['id']}/replay", json={"since": before.isoformat()}, headers=auth
    )
    assert response.status_code == 202, response.text
    assert response.json()["count"] == 2
    await sink.wait_for(4)
    ids = [r.json()["id"] for r in sink.delivered]
    assert sorted(ids) == sorted([e["id"] for e in matching] * 2)
    # A window in the future matches nothing.
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    response = await client.post(
        f"/api/v1/subscriptions/{sub['id']}/replay", json={"since": later}, headers=auth
    )
    assert response.json()["count"] == 0


async def test_pull_returns_matching_archived_events_in_order_with_a_cursor_to_continue(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    # The sink is gone for now: the subscriber catches up by pulling instead.
    sub = await subscribe(client, auth, "http://127.0.0.1:9/hook", validate=False, source=SOURCE)
    wanted = [event(f"key-{n % 3}", n) for n in range(7)]
    await publish(client, auth, *wanted)
    await wait_for_status(client, auth, sub["id"], "failed", count=1)

    url = f"/api/v1/subscriptions/{sub['id']}/events"
    pulled: list[dict[str, Any]] = []
    after: str | None = None

    async def all_archived() -> bool:
        response = await client.get(url, params={"limit": 100}, headers=auth)
        return len(response.json()["items"]) == len(wanted)

    await eventually(all_archived, what="every event to be archived")
    for _ in range(10):
        params: dict[str, Any] = {"limit": 3} | ({"after": after} if after else {})
        response = await client.get(url, params=params, headers=auth)
        assert response.status_code == 200, response.text
        page = response.json()
        pulled.extend(page["items"])
        after = page["next"]
        if not page["items"]:
            break
    # Archive order follows the log: across keys (partitions) it may interleave, per key never.
    assert sorted(e["id"] for e in pulled) == sorted(e["id"] for e in wanted)
    for key in ("key-0", "key-1", "key-2"):
        ns = [e["data"]["n"] for e in pulled if e["subject"] == key]
        assert ns == sorted(ns), f"{key} out of order: {ns}"
    assert all(e["specversion"] == "1.0" and e["source"] == SOURCE for e in pulled)
    # At the end the cursor stays usable: a new event shows up after it.
    extra = event("key-9", 99)
    await publish(client, auth, extra)

    async def extra_arrives() -> bool:
        response = await client.get(url, params={"after": after}, headers=auth)
        return [e["id"] for e in response.json()["items"]] == [extra["id"]]

    await eventually(extra_arrives, what="the new event after the cursor")


async def test_a_dead_delivery_raises_an_alert_event_to_the_subscribed_alert_endpoint(
    client: httpx.AsyncClient, auth: dict[str, str], sink: WebhookSink
) -> None:
    failing = await WebhookSink(responder=lambda n, r: 500).start()
    try:
        await subscribe(client, auth, sink.url, types=["nl.koppelhub.delivery.dead.v1"])
        sub = await subscribe(client, auth, failing.url)
        sent = event()
        await publish(client, auth, sent)
        [dead] = await wait_for_status(client, auth, sub["id"], "dead")
        [alert] = await sink.wait_for(1)
        body = alert.json()
        assert body["type"] == "nl.koppelhub.delivery.dead.v1"
        assert body["data"]["deliveryId"] == dead["id"]
        assert body["data"]["eventId"] == sent["id"]
        assert body["data"]["attempts"] == ATTEMPTS
        # The failing match-everything subscription does not get the alert about itself. The
        # alert's arrival is the marker: its deliveries are queued for every recipient in the
        # transaction that marked the delivery dead, so one to ``failing`` would be listed now.
        assert all(r.json()["id"] == sent["id"] for r in failing.received)
        assert len(await deliveries(client, auth, sub["id"])) == 1
    finally:
        await failing.stop()


async def test_retrying_a_failed_head_now_lets_the_later_events_of_its_key_follow_at_once(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    first_fails = {"left": 1}

    def answer(n: int, got: Any) -> int:
        if got.json()["data"]["n"] == 0 and first_fails["left"]:
            first_fails["left"] -= 1
            return 503
        return 204

    sink = await WebhookSink(responder=answer).start()
    witness = await WebhookSink().start()
    try:
        # The next try would be in an hour: only the operator's retry can bring it earlier.
        sub = await subscribe(client, auth, sink.url, retrySchedule=[3600], types=[TYPE])
        await subscribe(client, auth, witness.url, types=[MARKER])
        head = event("key-1", 0)
        await publish(client, auth, head)
        [failed] = await wait_for_status(client, auth, sub["id"], "failed")
        later = [event("key-1", 1), event("key-1", 2)]
        await publish(client, auth, *later)
        await wait_for_status(client, auth, sub["id"], "pending", count=2)
        # The marker reaches the witness in a claim round after the later rows were pending.
        await publish(client, auth, event("marker", type=MARKER))
        await witness.wait_for(1)
        assert sink.delivered == [], "a later event overtook the failed one"
        response = await client.post(
            f"/api/v1/subscriptions/{sub['id']}/deliveries/{failed['id']}/retry", headers=auth
        )
        assert response.status_code == 202
        await sink.wait_for(3, timeout=10)
        assert [r.json()["data"]["n"] for r in sink.delivered] == [0, 1, 2]
    finally:
        await sink.stop()
        await witness.stop()


async def test_no_alert_is_raised_about_the_delivery_of_an_alert(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    broken = await WebhookSink(responder=lambda n, r: 500).start()
    try:
        # The alerting endpoint itself is broken: its alert deliveries go dead too.
        alerting = await subscribe(client, auth, broken.url, types=["nl.koppelhub.delivery.dead.v1"])
        events = await subscribe(client, auth, broken.url, source=SOURCE)
        await publish(client, auth, event())
        await wait_for_status(client, auth, events["id"], "dead")
        # An alert about that dead alert would be queued in the transaction that marked it dead
        # (hub/adapters/postgres/alerts.py), so it would be listed as soon as "dead" is.
        [dead_alert] = await wait_for_status(client, auth, alerting["id"], "dead")
        assert [d["id"] for d in await deliveries(client, auth, alerting["id"])] == [dead_alert["id"]]
    finally:
        await broken.stop()


async def test_replay_of_only_undelivered_events_sends_the_dead_one_under_its_webhook_id_and_makes_it_good(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    healthy = False
    sink = await WebhookSink(responder=lambda n, r: 204 if healthy else 500).start()
    try:
        sub = await subscribe(client, auth, sink.url, ordering="none")
        before = datetime.now(UTC) - timedelta(seconds=1)
        lost = event("lost-1", 1)
        await publish(client, auth, lost)
        await wait_for_status(client, auth, sub["id"], "dead")
        healthy = True
        fine = event("fine-1", 2)
        await publish(client, auth, fine)
        await wait_for_status(client, auth, sub["id"], "delivered")

        response = await client.post(
            f"/api/v1/subscriptions/{sub['id']}/replay",
            json={"since": before.isoformat(), "onlyUndelivered": True},
            headers=auth,
        )
        assert response.status_code == 202, response.text
        assert response.json()["count"] == 1
        await wait_for_status(client, auth, sub["id"], "delivered", count=3)
        assert await deliveries(client, auth, sub["id"], status="dead") == []
        assert sorted(r.json()["id"] for r in sink.delivered) == sorted([lost["id"], fine["id"]])
        ids = {r.headers["webhook-id"] for r in sink.received if r.json()["id"] == lost["id"]}
        assert len(ids) == 1, "a replay changed the webhook-id"
    finally:
        await sink.stop()


async def test_recover_retries_every_dead_delivery_since_a_moment(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    healthy = False
    sink = await WebhookSink(responder=lambda n, r: 204 if healthy else 500).start()
    try:
        sub = await subscribe(client, auth, sink.url, ordering="none")
        before = datetime.now(UTC) - timedelta(seconds=1)
        sent = [event("a-1", 1), event("b-1", 2)]
        await publish(client, auth, *sent)
        await wait_for_status(client, auth, sub["id"], "dead", count=2)
        healthy = True
        url = f"/api/v1/subscriptions/{sub['id']}/recover"
        missing = await client.post(url, json={}, headers=auth)
        assert missing.status_code == 400 and missing.headers["content-type"] == "application/problem+json"
        unknown = await client.post(
            "/api/v1/subscriptions/00000000-0000-0000-0000-000000000000/recover",
            json={"since": before.isoformat()},
            headers=auth,
        )
        assert unknown.status_code == 404

        response = await client.post(url, json={"since": before.isoformat()}, headers=auth)
        assert response.status_code == 202, response.text
        assert response.json()["count"] == 2
        await wait_for_status(client, auth, sub["id"], "delivered", count=2)
        assert sorted(r.json()["id"] for r in sink.delivered) == sorted(e["id"] for e in sent)
    finally:
        await sink.stop()
