"""The audit trail over HTTP: management calls and refused attempts are recorded with actor,
action, target, outcome, request id, client and changed field names, never a secret; a
gebruik-beheerder reads its own organisation's entries, a functioneel-beheerder all; no secret
reaches the trail or the hub's log output."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.support.sink import WebhookSink

pytestmark = pytest.mark.e2e


async def audit(client: httpx.AsyncClient, headers: dict[str, str], **params: str) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/audit", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def test_who_changed_this_subscription_when_and_what_and_who_was_refused(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    sink: WebhookSink,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    made = await client.post(
        "/api/v1/tokens",
        json={"name": "beheer a", "role": "gebruik-beheerder", "organisatie": "gem-a"},
        headers=auth,
    )
    secret = made.json()["token"]
    beheer_a = {"Authorization": f"Bearer {secret}", "X-Request-Id": "req-42"}
    created = await client.post(
        "/api/v1/subscriptions", json={"sink": sink.url, "types": ["nl.x.y.v1"]}, headers=beheer_a
    )
    assert created.status_code == 201 and created.headers["x-request-id"] == "req-42"
    sub = created.json()
    target = f"/api/v1/subscriptions/{sub['id']}"
    changed = await client.patch(target, json={"types": ["nl.x.z.v1"], "enabled": False}, headers=beheer_a)
    assert changed.status_code == 200, changed.text
    rotated = await client.post(f"{target}/secret/rotate", headers=beheer_a)
    assert rotated.status_code == 200
    assert (
        await client.get("/api/v1/tokens", headers={"Authorization": "Bearer kh_not-a-token"})
    ).status_code == 401
    raadpleger = await client.post(
        "/api/v1/tokens",
        json={"name": "r", "role": "gebruik-raadpleger", "organisatie": "gem-a"},
        headers=auth,
    )
    refused = await client.delete(target, headers={"Authorization": f"Bearer {raadpleger.json()['token']}"})
    assert refused.status_code == 403

    history = await audit(client, auth, target=target)
    assert [(e["action"], e["outcome"]) for e in history] == [
        ("DELETE /api/v1/subscriptions/{subscription_id}", "refused"),
        ("POST /api/v1/subscriptions/{subscription_id}/secret/rotate", "ok"),
        ("PATCH /api/v1/subscriptions/{subscription_id}", "ok"),
        ("POST /api/v1/subscriptions", "ok"),
    ]
    patch = history[2]
    assert patch["actor"] == {"name": "beheer a", "role": "gebruik-beheerder", "organisatie": "gem-a",
                              "credential": made.json()["id"]}  # fmt: skip
    assert patch["changes"] == ["enabled", "types"] and patch["requestId"] == "req-42"
    assert patch["client"] == "127.0.0.1" and patch["time"]
    assert history[3]["changes"] == ["sink", "types"]
    unauthenticated = [e for e in await audit(client, auth) if e["status"] == 401]
    assert len(unauthenticated) == 1 and unauthenticated[0]["actor"]["name"] is None

    own = await audit(client, {"Authorization": f"Bearer {secret}"})
    assert own and all(e["actor"]["organisatie"] == "gem-a" for e in own)
    everything = json.dumps(await audit(client, auth, limit="500"))
    out, err = capfd.readouterr()
    logs = out + err + caplog.text
    for secret_value in (secret, raadpleger.json()["token"], sub["secret"], rotated.json()["secret"]):
        assert secret_value not in everything and secret_value not in logs
