"""The handshake on create and on a sink change, and the validation of subscription options, on
the in-memory app; the sinks are real local servers. Deliveries with these options are in
tests/e2e/test_sink_options.py."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import httpx
import pytest

from hub.adapters.memory import InMemorySubscriptionStore
from tests.support.hub_api import subscribe
from tests.support.memory_app import MemoryApp
from tests.support.sink import WebhookSink


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


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
        # Not ASCII: ssl raised a TypeError (a 500) where a bad PEM raises an SSLError.
        (
            {"auth": {"caCertificate": "-----BEGIN CERTIFICATE-----\nMIIé\n-----END CERTIFICATE-----\n"}},
            "auth.caCertificate",
        ),
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


async def test_sink_auth_sent_back_as_shown_keeps_its_secrets(
    memory: MemoryApp, auth: dict[str, str], sink: WebhookSink
) -> None:
    client = memory.client
    oauth2 = {"tokenUrl": sink.url + "/token", "clientId": "hub", "clientSecret": "c-s3cret"}
    body = {"auth": {"oauth2": oauth2, "proxy": "http://user:p-s3cret@127.0.0.1:3128"}}
    created = await client.post(
        "/api/v1/subscriptions", json={"sink": sink.url, "validate": False, **body}, headers=auth
    )
    path = f"/api/v1/subscriptions/{created.json()['id']}"
    shown = (await client.get(path, headers=auth)).json()

    sent_back = await client.patch(path, json={"auth": shown["auth"]}, headers=auth)

    assert sent_back.status_code == 200, sent_back.text
    stored = await InMemorySubscriptionStore(memory.database).get(uuid.UUID(created.json()["id"]))
    assert stored.auth["oauth2"]["client_secret"] == "c-s3cret"
    assert stored.auth["proxy"] == "http://user:p-s3cret@127.0.0.1:3128"
    changed = {**shown["auth"], "oauth2": {**shown["auth"]["oauth2"], "clientSecret": "n1euw"}}
    assert (await client.patch(path, json={"auth": changed}, headers=auth)).status_code == 200
    stored = await InMemorySubscriptionStore(memory.database).get(uuid.UUID(created.json()["id"]))
    assert stored.auth["oauth2"]["client_secret"] == "n1euw"


async def test_a_credential_in_the_headers_is_write_only_and_still_sent(
    client: httpx.AsyncClient, auth: dict[str, str], sink: WebhookSink
) -> None:
    """A sink URL may not carry credentials (a 400 says to use the headers), so the headers
    carry them: their values are shown as ``***`` and kept when a change sends that back."""
    headers = {"Authorization": "Bearer sink-s3cret", "X-Api-Key": "key-s3cret", "X-Tenant": "a"}
    sub = await subscribe(client, auth, sink.url, protocolsettings={"headers": headers})
    path = f"/api/v1/subscriptions/{sub['id']}"
    listed = await client.get("/api/v1/subscriptions", headers=auth)
    for shown in (sub, (await client.get(path, headers=auth)).json(), listed.json()):
        assert "s3cret" not in str(shown)
    assert sub["protocolsettings"]["headers"] == {"Authorization": "***", "X-Api-Key": "***", "X-Tenant": "a"}

    sent_back = {**sub["protocolsettings"]["headers"], "X-Tenant": "b"}
    changed = await client.patch(path, json={"protocolsettings": {"headers": sent_back}}, headers=auth)
    assert changed.status_code == 200 and changed.json()["protocolsettings"]["headers"]["X-Tenant"] == "b"
    tested = await client.post(f"{path}/test", headers=auth)
    assert tested.json()["delivered"] is True, tested.text
    got = lower(sink.received[-1].headers)
    assert (got["authorization"], got["x-api-key"]) == ("Bearer sink-s3cret", "key-s3cret")
    assert got["x-tenant"] == "b"


@pytest.mark.parametrize("host", ["a" * 64 + ".example.org", "a..example.org"])
async def test_a_sink_host_that_is_not_a_host_name_is_a_400_even_unvalidated(
    client: httpx.AsyncClient, auth: dict[str, str], host: str
) -> None:
    """A label over 63 characters or an empty one: the IDNA codec raised a UnicodeError (a 500)."""
    body = {"sink": f"http://{host}/hook", "validate": False}
    response = await client.post("/api/v1/subscriptions", json=body, headers=auth)
    assert response.status_code == 400, response.text
    assert "not a valid host name" in response.json()["detail"]
