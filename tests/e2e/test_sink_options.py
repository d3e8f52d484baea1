"""Secret rotation, content modes, test deliveries and patched filters on a running hub.

The handshake and the validation of options are unit tests on the in-memory app
(tests/unit/api/test_sink_options.py)."""

from __future__ import annotations

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from tests.e2e.test_delivery_outcomes import lower, publish
from tests.support.hub_api import event, subscribe
from tests.support.sink import WebhookSink

pytestmark = pytest.mark.e2e


async def test_after_rotation_deliveries_verify_with_the_new_and_with_the_old_secret(
    client: httpx.AsyncClient, auth: dict[str, str], sink: WebhookSink
) -> None:
    sub = await subscribe(client, auth, sink.url)
    old = sub["secret"]
    response = await client.post(f"/api/v1/subscriptions/{sub['id']}/secret/rotate", headers=auth)
    assert response.status_code == 200, response.text
    new = response.json()["secret"]
    assert new.startswith("whsec_") and new != old
    assert response.json()["previousSecretExpiresAt"]
    await publish(client, auth, event())
    [got] = await sink.wait_for(1)
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    Webhook(new).verify(got.body, got.headers)  # raises when no signature matches
    Webhook(old).verify(got.body, got.headers)
    listed = (await client.get(f"/api/v1/subscriptions/{sub['id']}", headers=auth)).json()
    assert "secret" not in listed and listed["previousSecretExpiresAt"]


async def test_binary_content_mode_sends_ce_headers_and_the_data_as_body(
    client: httpx.AsyncClient, auth: dict[str, str], sink: WebhookSink
) -> None:
    sub = await subscribe(client, auth, sink.url, contentMode="binary")
    assert sub["contentMode"] == "binary"
    sent = event("key-é", 7)
    await publish(client, auth, sent)
    [got] = await sink.wait_for(1)
    headers = lower(got.headers)
    assert headers["ce-id"] == sent["id"]
    assert headers["ce-type"] == sent["type"]
    assert headers["ce-specversion"] == "1.0"
    assert headers["ce-subject"] == "key-%C3%A9"  # percent-encoded, as the HTTP binding asks
    assert headers["content-type"] == "application/json"
    assert got.json() == {"n": 7}
    Webhook(sub["secret"]).verify(got.body, got.headers)


async def test_the_test_endpoint_sends_a_signed_test_event_and_reports_the_outcome(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    sink = await WebhookSink(responder=lambda n, r: 204 if n == 1 else 503).start()
    try:
        sub = await subscribe(client, auth, sink.url)
        first = (await client.post(f"/api/v1/subscriptions/{sub['id']}/test", headers=auth)).json()
        assert first["delivered"] is True and first["statusCode"] == 204
        [got] = sink.received
        assert got.json()["type"] == "nl.koppelhub.subscription.test.v1"
        Webhook(sub["secret"]).verify(got.body, got.headers)
        second = (await client.post(f"/api/v1/subscriptions/{sub['id']}/test", headers=auth)).json()
        assert second["delivered"] is False and second["statusCode"] == 503 and second["error"] == "http_503"
    finally:
        await sink.stop()


async def test_patch_changes_filters_and_options_and_null_returns_an_option_to_the_default(
    client: httpx.AsyncClient, auth: dict[str, str], sink: WebhookSink
) -> None:
    sub = await subscribe(client, auth, sink.url, retrySchedule=[1, 2], maxRate=10)
    url = f"/api/v1/subscriptions/{sub['id']}"
    changed = await client.patch(
        url,
        json={
            "filters": [{"prefix": {"subject": "app-"}}],
            "protocolsettings": {"headers": {"X-Tenant": "b"}},
            "retrySchedule": None,
            "maxRate": None,
            "config": None,
            "ordering": "none",
        },
        headers=auth,
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["filters"] == [{"prefix": {"subject": "app-"}}]
    assert body["protocolsettings"]["headers"] == {"X-Tenant": "b"}
    assert (body["retrySchedule"], body["maxRate"], body["config"], body["ordering"]) == (
        None,
        None,
        {},
        "none",
    )
    # The new filter applies to what is published next.
    await publish(client, auth, event("other-1", 1), event("app-1", 2))
    [got] = await sink.wait_for(1)
    assert got.json()["subject"] == "app-1" and lower(got.headers)["x-tenant"] == "b"
    missing = await client.patch(
        "/api/v1/subscriptions/00000000-0000-0000-0000-000000000000", json={"enabled": False}, headers=auth
    )
    assert missing.status_code == 404
