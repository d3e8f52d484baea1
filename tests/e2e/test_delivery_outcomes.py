"""What the dispatcher makes of each answer a sink gives (INTERFACES.md, "Webhook delivery").

The ``settings`` fixture retries after 0.2, 0.4 and 0.8 s: four attempts in all, then dead.
Sinks are real local HTTP servers (tests/support/sink.py) answering as each test scripts.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.support.hub_api import event, eventually, subscribe
from tests.support.sink import Received, WebhookSink

pytestmark = pytest.mark.e2e

ATTEMPTS = 4  # the first attempt plus one per delay of the test retry schedule


async def publish(client: httpx.AsyncClient, auth: dict[str, str], *events: dict[str, Any]) -> None:
    response = await client.post(
        "/api/v1/events",
        content=json.dumps(list(events)),
        headers={**auth, "content-type": "application/cloudevents-batch+json"},
    )
    assert response.status_code == 202, response.text


async def deliveries(
    client: httpx.AsyncClient, auth: dict[str, str], subscription_id: str, **params: str
) -> list[dict[str, Any]]:
    response = await client.get(
        f"/api/v1/subscriptions/{subscription_id}/deliveries", params=params, headers=auth
    )
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def wait_for_status(
    client: httpx.AsyncClient, auth: dict[str, str], subscription_id: str, status: str, count: int = 1
) -> list[dict[str, Any]]:
    """The deliveries with ``status`` once there are ``count`` of them."""
    found: list[dict[str, Any]] = []

    async def enough() -> bool:
        nonlocal found
        found = await deliveries(client, auth, subscription_id, status=status)
        return len(found) >= count

    await eventually(enough, what=f"{count} {status} deliveries")
    return found


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def answers(*statuses: int | tuple[int, dict[str, str]], then: int = 204) -> Callable[[int, Received], Any]:
    """A responder giving ``statuses`` to the first requests, ``then`` to every later one."""
    return lambda n, _: statuses[n - 1] if n <= len(statuses) else then


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_a_sink_that_always_answers_500_gets_four_attempts_then_the_delivery_is_dead(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    # The sink fails everything but a marker of the same key: the marker is held back while
    # the failing delivery is retried, so once it arrives no further attempt is coming.
    sent, marker = event("key-1", 0), event("key-1", 1)
    sink = await WebhookSink(responder=lambda n, r: 204 if r.json()["id"] == marker["id"] else 500).start()
    try:
        sub = await subscribe(client, auth, sink.url)
        await publish(client, auth, sent)
        [dead] = await wait_for_status(client, auth, sub["id"], "dead")
        assert dead["eventId"] == sent["id"]
        assert dead["attempts"] == ATTEMPTS
        assert dead["lastStatusCode"] == 500
        await publish(client, auth, marker)
        [arrived] = await sink.wait_for(1)  # accepted: the marker alone
        assert arrived.json()["id"] == marker["id"]
        attempts = [r for r in sink.received if r.json()["id"] == sent["id"]]
        assert len(attempts) == ATTEMPTS
        assert [r.json()["id"] for r in sink.received[ATTEMPTS:]] == [marker["id"]]
        assert len({r.headers["webhook-id"] for r in attempts}) == 1, "webhook-id changed between retries"
        # Dead is final but not lost: the delivery stays in the log.
        listed = {d["eventId"]: d for d in await deliveries(client, auth, sub["id"])}
        assert (listed[sent["id"]]["id"], listed[sent["id"]]["status"]) == (dead["id"], "dead")
    finally:
        await sink.stop()


async def test_a_sink_that_refuses_connections_is_retried_until_the_delivery_is_dead(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    # Unreachable now: the handshake would refuse it, so the subscriber opts out of validation.
    sub = await subscribe(client, auth, f"http://127.0.0.1:{unused_port()}/hook", validate=False)
    await publish(client, auth, event())
    [dead] = await wait_for_status(client, auth, sub["id"], "dead")
    assert dead["attempts"] == ATTEMPTS
    assert dead["lastStatusCode"] is None and dead["lastError"]


async def test_a_410_disables_the_subscription_and_stops_delivery_while_the_delivery_stays_listed(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    gone = await WebhookSink(responder=lambda n, r: 410).start()
    witness = await WebhookSink().start()
    try:
        sub = await subscribe(client, auth, gone.url)
        await subscribe(client, auth, witness.url)
        first = event("key-1")
        await publish(client, auth, first)

        async def disabled() -> bool:
            response = await client.get(f"/api/v1/subscriptions/{sub['id']}", headers=auth)
            return bool(response.json()["status"] == "disabled")

        await eventually(disabled, what="the subscription to be disabled")
        # New events: the witness subscription gets them, the disabled one is not attempted.
        later = [event("key-1", 1), event("key-2", 2)]
        await publish(client, auth, *later)
        await witness.wait_for(3)
        # A marker published after them reaches the witness in a later claim round: every
        # round offers each active subscription's due rows, so one for the disabled
        # subscription would have been attempted by then.
        await publish(client, auth, event("key-1", 3))
        await witness.wait_for(4)
        assert len(gone.received) == 1, [r.json()["id"] for r in gone.received]
        assert gone.received[0].json()["id"] == first["id"]

        log = {d["eventId"]: d for d in await deliveries(client, auth, sub["id"])}
        assert first["id"] in log, "the delivery answered with 410 is no longer listed"
        assert log[first["id"]]["attempts"] == 1
        assert log[first["id"]]["lastStatusCode"] == 410
        for e in later:
            assert e["id"] not in log or log[e["id"]]["attempts"] == 0, log[e["id"]]
        current = (await client.get(f"/api/v1/subscriptions/{sub['id']}", headers=auth)).json()
        assert current["status"] == "disabled"
    finally:
        await gone.stop()
        await witness.stop()


@pytest.mark.parametrize("status", [302, 307])
async def test_a_redirect_is_not_followed_and_the_delivery_is_retried(
    client: httpx.AsyncClient, auth: dict[str, str], status: int
) -> None:
    elsewhere = await WebhookSink().start()
    redirecting = await WebhookSink(responder=lambda n, r: (status, {"Location": elsewhere.url})).start()
    try:
        sub = await subscribe(client, auth, redirecting.url)
        await publish(client, auth, event())
        [dead] = await wait_for_status(client, auth, sub["id"], "dead")
        assert dead["attempts"] == ATTEMPTS
        assert dead["lastStatusCode"] == status
        assert len(redirecting.received) == ATTEMPTS
        assert elsewhere.received == [], "the redirect was followed"
    finally:
        await redirecting.stop()
        await elsewhere.stop()


async def test_every_delivery_carries_the_subscription_headers_and_a_valid_standard_webhooks_signature(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    # The first request fails, so a retry is among the deliveries checked.
    sink = await WebhookSink(responder=answers(503)).start()
    extra = {"Authorization": "Bearer sink-side-token", "X-Koppel-Tenant": "gemeente-a"}
    try:
        sub = await subscribe(client, auth, sink.url, protocolsettings={"headers": extra})
        sent = [event("key-1", 1), event("key-2", 2)]
        await publish(client, auth, *sent)
        await sink.wait_for(2)
        received = sink.received
        assert len(received) == 3
        verifier = Webhook(sub["secret"])
        impostor = Webhook("whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY")
        for got in received:
            headers = lower(got.headers)
            assert headers["authorization"] == extra["Authorization"]
            assert headers["x-koppel-tenant"] == extra["X-Koppel-Tenant"]
            assert headers["content-type"] == "application/cloudevents+json"
            assert headers["webhook-id"]
            assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
            assert headers["webhook-signature"].startswith("v1,")
            verifier.verify(got.body, got.headers)  # raises on a bad signature
            with pytest.raises(WebhookVerificationError):
                impostor.verify(got.body, got.headers)
        assert sorted(r.json()["id"] for r in sink.delivered) == sorted(e["id"] for e in sent)
    finally:
        await sink.stop()


async def test_a_sink_that_answers_503_twice_then_204_is_delivered_on_the_third_attempt(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    sink = await WebhookSink(responder=answers(503, 503, then=204)).start()
    try:
        sub = await subscribe(client, auth, sink.url)
        sent = event()
        await publish(client, auth, sent)
        await sink.wait_for(1)
        [delivered] = await wait_for_status(client, auth, sub["id"], "delivered")
        assert delivered["eventId"] == sent["id"]
        assert delivered["attempts"] == 3
        assert delivered["status"] == "delivered"
        assert delivered["lastStatusCode"] == 204
        assert len(sink.received) == 3
        assert len({r.headers["webhook-id"] for r in sink.received}) == 1
    finally:
        await sink.stop()


async def test_any_2xx_answer_counts_as_delivered_at_the_first_attempt(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    codes = [200, 201, 202, 204, 299]
    sink = await WebhookSink(responder=lambda n, got: codes[got.json()["data"]["n"]]).start()
    try:
        sub = await subscribe(client, auth, sink.url)
        await publish(client, auth, *(event(f"key-{i}", i) for i in range(len(codes))))
        done = await wait_for_status(client, auth, sub["id"], "delivered", count=len(codes))
        assert [d["attempts"] for d in done] == [1] * len(codes)
        assert sorted(d["lastStatusCode"] for d in done) == codes
        assert len(sink.received) == len(codes)
    finally:
        await sink.stop()
