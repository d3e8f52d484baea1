"""Secret rotation, content modes, the handshake, test deliveries and validation of options."""

from __future__ import annotations

import base64
from typing import Any

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


async def test_the_handshake_runs_on_create_and_caps_the_rate_the_sink_allows(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    sink = await WebhookSink(allowed_rate=120).start()
    try:
        sub = await subscribe(client, auth, sink.url)
        [options] = sink.handshakes
        assert options.method == "OPTIONS"
        assert lower(options.headers)["webhook-request-origin"] == "koppelhub.local"
        assert sub["handshake"] == {"status": "confirmed", "allowedRate": 2.0}
    finally:
        await sink.stop()


@pytest.mark.parametrize("status", [404, 405])
async def test_a_sink_without_the_handshake_is_accepted_and_marked_unsupported(
    client: httpx.AsyncClient, auth: dict[str, str], status: int
) -> None:
    sink = await WebhookSink(handshake_status=status).start()
    try:
        sub = await subscribe(client, auth, sink.url)
        assert sub["handshake"]["status"] == "unsupported"
    finally:
        await sink.stop()


async def test_a_sink_change_runs_the_handshake_again_and_an_unreachable_sink_is_a_400(
    client: httpx.AsyncClient, auth: dict[str, str], sink: WebhookSink
) -> None:
    other = await WebhookSink(handshake_status=405).start()
    try:
        sub = await subscribe(client, auth, sink.url)
        changed = await client.patch(
            f"/api/v1/subscriptions/{sub['id']}", json={"sink": other.url}, headers=auth
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["sink"] == other.url and changed.json()["handshake"]["status"] == "unsupported"
        assert len(other.handshakes) == 1
        unreachable = {"sink": "http://127.0.0.1:9/hook"}
        refused = await client.patch(f"/api/v1/subscriptions/{sub['id']}", json=unreachable, headers=auth)
        assert refused.status_code == 400
        assert refused.json()["errors"][0]["field"] == "sink"
        forced = await client.patch(
            f"/api/v1/subscriptions/{sub['id']}", params={"validate": "false"}, json=unreachable, headers=auth
        )
        assert forced.status_code == 200 and forced.json()["handshake"]["status"] == "skipped"
    finally:
        await other.stop()


async def test_an_unreachable_sink_is_a_400_on_create_unless_validate_is_false(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    body = {"sink": "http://127.0.0.1:9/hook"}
    refused = await client.post("/api/v1/subscriptions", json=body, headers=auth)
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["field"] == "sink"
    accepted = await client.post("/api/v1/subscriptions", json={**body, "validate": False}, headers=auth)
    assert accepted.status_code == 201, accepted.text


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


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"retrySchedule": [-1]}, "retrySchedule"),
        ({"retrySchedule": []}, "retrySchedule"),
        ({"ordering": "random"}, "ordering"),
        ({"maxConcurrency": 0}, "maxConcurrency"),
        ({"maxRate": -2}, "maxRate"),
        ({"contentMode": "batch"}, "contentMode"),
        (
            {"auth": {"oauth2": {"tokenUrl": "ftp://x", "clientId": "a", "clientSecret": "b"}}},
            "auth.oauth2.tokenUrl",
        ),
        (
            {"auth": {"clientCertificate": {"certificate": "nope", "privateKey": "nope"}}},
            "auth.clientCertificate.certificate",
        ),
        ({"auth": {"proxy": "socks5://x"}}, "auth.proxy"),
        ({"enabled": None}, "enabled"),
        ({"sink": None}, "sink"),
    ],
)
async def test_bad_options_are_a_400_naming_the_field(
    client: httpx.AsyncClient, auth: dict[str, str], sink: WebhookSink, body: dict[str, Any], field: str
) -> None:
    sub = await subscribe(client, auth, sink.url)
    response = await client.patch(f"/api/v1/subscriptions/{sub['id']}", json=body, headers=auth)
    assert response.status_code == 400, response.text
    assert any(e["field"] == field for e in response.json()["errors"]), response.json()


async def test_sink_auth_secrets_are_write_only(
    client: httpx.AsyncClient, auth: dict[str, str], sink: WebhookSink
) -> None:
    secret = base64.b64encode(b"very-secret-client-secret").decode()
    body = {
        "auth": {
            "oauth2": {"tokenUrl": sink.url + "/token", "clientId": "hub", "clientSecret": secret},
            "proxy": "http://user:proxy-password@127.0.0.1:3128",
        }
    }
    created = await client.post(
        "/api/v1/subscriptions", json={"sink": sink.url, "validate": False, **body}, headers=auth
    )
    assert created.status_code == 201, created.text
    sub = created.json()
    for shown in (sub, (await client.get(f"/api/v1/subscriptions/{sub['id']}", headers=auth)).json()):
        text = str(shown)
        assert secret not in text and "proxy-password" not in text
        assert shown["auth"]["oauth2"]["clientId"] == "hub"
        assert shown["auth"]["proxy"] == "http://user:***@127.0.0.1:3128"


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
