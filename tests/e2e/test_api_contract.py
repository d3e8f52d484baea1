"""The documented HTTP contract on a running hub: what needs the projector and dispatcher.

The contract's validation, errors, auth and paging are unit tests on the in-memory app
(tests/unit/api/test_api_contract.py); here stay the delivery log, which needs real deliveries
that succeed and fail, and readiness, which needs every role running.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from tests.support.hub_api import event, eventually, subscribe
from tests.support.sink import WebhookSink

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"
BATCH = {"content-type": "application/cloudevents-batch+json"}


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body = dict(response.json())
    assert body["status"] == status and body["title"]
    return body


async def test_the_delivery_log_filters_by_status_and_rejects_an_unknown_status(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    # "ok-…" subjects are accepted, "bad-…" ones always fail and go dead after 4 attempts.
    sink = await WebhookSink(responder=lambda _, got: 204 if got.json()["subject"] == "ok" else 500).start()
    try:
        sub = await subscribe(client, auth, sink.url)
        ok, bad = event("ok"), event("bad")
        response = await client.post(
            "/api/v1/events", content=json.dumps([ok, bad]), headers={**auth, **BATCH}
        )
        assert response.status_code == 202, response.text
        url = f"/api/v1/subscriptions/{sub['id']}/deliveries"

        async def both_recorded() -> bool:
            # Different keys may be projected by different consumers, so one at a time.
            delivered = (await client.get(url, params={"status": "delivered"}, headers=auth)).json()
            listed = (await client.get(url, headers=auth)).json()
            return bool(delivered["items"]) and len(listed["items"]) == 2

        await eventually(both_recorded)
        delivered = (await client.get(url, params={"status": "delivered"}, headers=auth)).json()
        assert [(d["eventId"], d["status"]) for d in delivered["items"]] == [(ok["id"], "delivered")]
        everything = (await client.get(url, headers=auth)).json()
        assert sorted(d["eventId"] for d in everything["items"]) == sorted([ok["id"], bad["id"]])
        for d in everything["items"]:
            assert {"id", "eventId", "status", "attempts"} <= d.keys()
        problem = assert_problem(await client.get(url, params={"status": "bogus"}, headers=auth), 400)
        assert "status" in json.dumps(problem)
    finally:
        await sink.stop()


async def test_readyz_is_200_with_every_check_true_while_the_hub_runs(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    for _ in range(100):  # the projector counts as running once it has joined its group
        if response.status_code == 200:
            break
        await asyncio.sleep(0.1)
        response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    checks = response.json()["checks"]
    assert {"broker", "database", "api", "projector", "dispatcher"} <= checks.keys()
    assert all(checks.values()), checks
