"""Retry, replay and pull of one subscription: their validation and error answers on the
in-memory app. The redeliveries themselves are in tests/e2e/test_redelivery.py."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.hub_api import subscribe
from tests.support.sink import WebhookSink


async def test_retrying_an_unknown_delivery_is_a_404(
    client: httpx.AsyncClient, auth: dict[str, str], sink: WebhookSink
) -> None:
    sub = await subscribe(client, auth, sink.url)
    response = await client.post(
        f"/api/v1/subscriptions/{sub['id']}/deliveries/00000000-0000-0000-0000-000000000000/retry",
        headers=auth,
    )
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "since"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-11-22T10:00:00"}, "since"),  # no timezone
        ({"since": "2026-11-22T10:00:00Z", "until": "2026-11-22T09:00:00Z"}, ""),
    ],
)
async def test_a_bad_replay_window_is_a_400_naming_the_field(
    client: httpx.AsyncClient, auth: dict[str, str], sink: WebhookSink, body: dict[str, Any], field: str
) -> None:
    sub = await subscribe(client, auth, sink.url)
    response = await client.post(f"/api/v1/subscriptions/{sub['id']}/replay", json=body, headers=auth)
    assert response.status_code == 400, response.text
    problem = response.json()
    assert any(e["field"] == field for e in problem["errors"]), problem


async def test_pull_with_a_forged_cursor_is_a_400_naming_after(
    client: httpx.AsyncClient, auth: dict[str, str], sink: WebhookSink
) -> None:
    sub = await subscribe(client, auth, sink.url)
    response = await client.get(
        f"/api/v1/subscriptions/{sub['id']}/events", params={"after": "not-a-cursor"}, headers=auth
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "after"


async def test_a_pull_page_names_the_hub_that_answers_it(
    client: httpx.AsyncClient, auth: dict[str, str], sink: WebhookSink
) -> None:
    sub = await subscribe(client, auth, sink.url)

    response = await client.get(f"/api/v1/subscriptions/{sub['id']}/events", headers=auth)

    assert response.status_code == 200, response.text
    assert response.json()["hub"] == "urn:nld:oin:00000000000000000000:systeem:koppelhub"
