"""From publish to signed webhook, on the real embedded broker and database."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from cloudevents.v1.http import from_http
from standardwebhooks.webhooks import Webhook

from tests.support.hub_api import SOURCE, TYPE, event, subscribe
from tests.support.sink import WebhookSink

pytestmark = pytest.mark.e2e


async def test_events_in_every_content_mode_arrive_signed_and_parseable(
    client: httpx.AsyncClient, auth: dict[str, str], sink: WebhookSink
) -> None:
    sub = await subscribe(client, auth, sink.url, types=[TYPE])
    structured = event("app-1", 1)
    batch = [event("app-2", 2), event("app-3", 3)]
    binary_id = str(uuid.uuid4())

    r1 = await client.post(
        "/api/v1/events",
        content=json.dumps(structured),
        headers={**auth, "content-type": "application/cloudevents+json"},
    )
    r2 = await client.post(
        "/api/v1/events",
        content=json.dumps(batch),
        headers={**auth, "content-type": "application/cloudevents-batch+json"},
    )
    r3 = await client.post(
        "/api/v1/events",
        content=json.dumps({"n": 4}),
        headers={
            **auth,
            "content-type": "application/json",
            "ce-specversion": "1.0",
            "ce-id": binary_id,
            "ce-source": SOURCE,
            "ce-type": TYPE,
            "ce-subject": "app-4",
        },
    )
    assert [r.status_code for r in (r1, r2, r3)] == [202, 202, 202]
    assert r2.json() == {"accepted": [batch[0]["id"], batch[1]["id"]]}

    received = await sink.wait_for(4)
    verifier = Webhook(sub["secret"])
    by_subject = {}
    for got in received:
        verifier.verify(got.body, got.headers)  # raises on a bad signature
        assert got.headers["Content-Type"] == "application/cloudevents+json"
        ce = from_http(got.headers, got.body)
        by_subject[ce["subject"]] = ce
    assert sorted(by_subject) == ["app-1", "app-2", "app-3", "app-4"]
    assert by_subject["app-4"]["id"] == binary_id
    assert by_subject["app-4"].data == {"n": 4}
    assert by_subject["app-1"]["id"] == structured["id"]


async def test_an_event_published_twice_is_delivered_once(
    client: httpx.AsyncClient, auth: dict[str, str], sink: WebhookSink
) -> None:
    await subscribe(client, auth, sink.url)
    twice = event("app-1")
    marker = event("app-1", 1)  # the same key: delivered after any copy of the first
    headers = {**auth, "content-type": "application/cloudevents+json"}
    for body in (twice, twice, marker):
        assert (
            await client.post("/api/v1/events", content=json.dumps(body), headers=headers)
        ).status_code == 202
    received = await sink.wait_for(2)
    while marker["id"] not in (ids := [json.loads(r.body)["id"] for r in received]):
        received = await sink.wait_for(len(received) + 1)
    assert ids == [twice["id"], marker["id"]]


async def test_only_matching_subscriptions_receive_an_event(
    client: httpx.AsyncClient, auth: dict[str, str], sink: WebhookSink
) -> None:
    other = await WebhookSink().start()
    try:
        await subscribe(client, auth, sink.url, filters=[{"prefix": {"subject": "gemeente-a/"}}])
        await subscribe(client, auth, other.url, filters=[{"not": {"prefix": {"subject": "gemeente-a/"}}}])
        headers = {**auth, "content-type": "application/cloudevents-batch+json"}
        batch = [event("gemeente-a/1"), event("gemeente-b/1"), event("gemeente-a/2")]
        assert (
            await client.post("/api/v1/events", content=json.dumps(batch), headers=headers)
        ).status_code == 202
        got_a = await sink.wait_for(2)
        got_b = await other.wait_for(1)
        assert sorted(json.loads(r.body)["subject"] for r in got_a) == ["gemeente-a/1", "gemeente-a/2"]
        assert [json.loads(r.body)["subject"] for r in got_b] == ["gemeente-b/1"]
    finally:
        await other.stop()


async def test_events_for_one_subject_arrive_in_order_while_the_sink_fails_first(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    # The sink fails the first two attempts for "key-0"; later events for key-0 must wait.
    failures = {"left": 2}

    def flaky(_: int, got: Any) -> int:
        body = json.loads(got.body)
        if body["subject"] == "key-0" and failures["left"] > 0:
            failures["left"] -= 1
            return 503
        return 204

    sink = await WebhookSink(responder=flaky).start()
    try:
        sub = await subscribe(client, auth, sink.url)
        batch = [event(f"key-{i % 3}", i) for i in range(30)]
        headers = {**auth, "content-type": "application/cloudevents-batch+json"}
        assert (
            await client.post("/api/v1/events", content=json.dumps(batch), headers=headers)
        ).status_code == 202
        received = await sink.wait_for(30)
        per_key: dict[str, list[int]] = {}
        for got in received:
            body = json.loads(got.body)
            per_key.setdefault(body["subject"], []).append(body["data"]["n"])
        for key, seen in per_key.items():
            assert seen == sorted(seen), f"{key} out of order: {seen}"
        assert len(sink.received) == 32  # two failed attempts, then every event once
        ids = {r.headers["webhook-id"] for r in sink.received if json.loads(r.body)["id"] == batch[0]["id"]}
        assert len(ids) == 1, "webhook-id changed between retries"
        log = (await client.get(f"/api/v1/subscriptions/{sub['id']}/deliveries", headers=auth)).json()
        first = next(d for d in log["items"] if d["eventId"] == batch[0]["id"])
        assert first["attempts"] == 3 and first["status"] == "delivered"
    finally:
        await sink.stop()
