"""Whose events a write-back connector applies, and who owns its internal subscription (issue
13 §2): the connector's own organisation by default, another only when a functioneel-beheerder
names it in ``writeBack.organisaties``; no ``writeBack`` filter can change that; and the
internal subscription (sink ``connector:<id>``) cannot be changed or deleted through the
subscriptions API (a 409 that says to use the connector). On the app wired with in-memory
twins; the Signalen fake on loopback stands in for the connector's system."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.adapters.memory import InMemorySubscriptionStore
from hub.services.access import Role
from tests.support.connector_app import ADMIN_AUTH, connector_app
from tests.support.signalen_fake import SignalenFake

GEM_A, GEM_B = "gem-a", "gem-b"


@dataclass
class App:
    http: httpx.AsyncClient
    subscriptions: InMemorySubscriptionStore
    beheerder_a: dict[str, str]  # a gebruik-beheerder of gem-a


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    async with connector_app(tmp_path) as made:
        beheerder_a = await made.bearer(GEM_A, Role.GEBRUIK_BEHEERDER.value)
        yield App(made.http, made.subscriptions, beheerder_a)


@pytest.fixture
async def fake() -> AsyncIterator[SignalenFake]:
    f = await SignalenFake().start()
    yield f
    await f.stop()


def _body(fake: SignalenFake, write_back: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "signalen",
        "organisatie": GEM_A,
        "scheduleSeconds": 3600,
        "enabled": False,
        "config": {"url": fake.url, "auth": {"token": fake.token}, "writeBack": write_back},
    }


async def test_only_a_functioneel_beheerder_lets_a_connector_apply_another_organisations_events(
    app: App, fake: SignalenFake
) -> None:
    wide = {"organisaties": [GEM_A, GEM_B]}
    refused = await app.http.post("/api/v1/connectors", json=_body(fake, wide), headers=app.beheerder_a)
    own = await app.http.post("/api/v1/connectors", json=_body(fake, {}), headers=app.beheerder_a)
    widened = await app.http.patch(
        f"/api/v1/connectors/{own.json()['id']}",
        json={"config": {"writeBack": wide}},
        headers=app.beheerder_a,
    )
    granted = await app.http.post("/api/v1/connectors", json=_body(fake, wide), headers=ADMIN_AUTH)
    # the beheerder may still change something else of the connector the functioneel-beheerder
    # widened, but not which of gem-b's events it applies, nor where
    kept = await app.http.patch(
        f"/api/v1/connectors/{granted.json()['id']}",
        json={"scheduleSeconds": 600, "config": {"writeBack": wide}},
        headers=app.beheerder_a,
    )
    retyped, moved = [
        await app.http.patch(
            f"/api/v1/connectors/{granted.json()['id']}", json=change, headers=app.beheerder_a
        )
        for change in (
            {"config": {"writeBack": {**wide, "types": ["nl.signalen.melding.status-verzoek.v1"]}}},
            {"config": {"url": fake.url.rstrip("/") + "/elders/"}},
        )
    ]

    assert [refused.status_code, own.status_code, widened.status_code] == [403, 201, 403]
    assert GEM_B in refused.json()["detail"] and "functioneel-beheerder" in refused.json()["detail"]
    assert refused.headers["content-type"] == "application/problem+json"
    assert (granted.status_code, kept.status_code) == (201, 200), kept.text
    assert (retyped.status_code, moved.status_code) == (403, 403), (retyped.text, moved.text)
    assert GEM_B in retyped.json()["detail"] and "functioneel-beheerder" in moved.json()["detail"]
    mine = await app.subscriptions.get(uuid.UUID(own.json()["writeBackSubscription"]))
    theirs = await app.subscriptions.get(uuid.UUID(granted.json()["writeBackSubscription"]))
    assert mine.filters == [{"exact": {"organisatie": GEM_A}}]
    assert theirs.filters == [{"any": [{"exact": {"organisatie": GEM_A}}, {"exact": {"organisatie": GEM_B}}]}]


async def test_the_write_back_subscription_is_its_connectors_organisations_until_it_applies_others(
    app: App, fake: SignalenFake
) -> None:
    own = await app.http.post("/api/v1/connectors", json=_body(fake, {}), headers=app.beheerder_a)
    sid = own.json()["writeBackSubscription"]

    deliveries = await app.http.get(f"/api/v1/subscriptions/{sid}/deliveries", headers=app.beheerder_a)
    listed = await app.http.get("/api/v1/subscriptions", headers=app.beheerder_a)
    assert deliveries.status_code == 200, deliveries.text
    assert sid in [s["id"] for s in listed.json()["items"]]
    assert (await app.subscriptions.get(uuid.UUID(sid))).organisatie == GEM_A

    wide = {"config": {"writeBack": {"organisaties": [GEM_A, GEM_B]}}}
    widened = await app.http.patch(f"/api/v1/connectors/{own.json()['id']}", json=wide, headers=ADMIN_AUTH)
    assert widened.status_code == 200, widened.text
    assert (await app.subscriptions.get(uuid.UUID(sid))).organisatie is None  # gem-b's events too
    back = {"config": {"writeBack": {"organisaties": [GEM_A]}}}
    narrowed = await app.http.patch(f"/api/v1/connectors/{own.json()['id']}", json=back, headers=ADMIN_AUTH)
    assert narrowed.status_code == 200, narrowed.text
    assert (await app.subscriptions.get(uuid.UUID(sid))).organisatie == GEM_A


@pytest.mark.parametrize(
    "bad",
    [
        [{"exact": {"organisatie": GEM_B}}],
        [{"any": [{"exact": {"source": "urn:moon"}}, {"prefix": {"organisatie": "gem"}}]}],
        [{"not": {"exact": {"organisatie": GEM_A}}}],
    ],
)
async def test_a_write_back_filter_on_organisatie_is_a_400_that_names_writeback_organisaties(
    app: App, fake: SignalenFake, bad: list[dict[str, Any]]
) -> None:
    response = await app.http.post(
        "/api/v1/connectors", json=_body(fake, {"filters": bad}), headers=ADMIN_AUTH
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "config.writeBack.filters"
    assert "config.writeBack.organisaties" in response.json()["detail"]


@pytest.mark.parametrize(
    "change",
    [
        {"sink": "https://evil.example/hook"},
        {"types": ["nl.anything.v1"]},
        {"filters": []},
        {"retrySchedule": [1]},
        {"enabled": False},
    ],
)
async def test_the_internal_write_back_subscription_cannot_be_changed_through_the_subscriptions_api(
    app: App, fake: SignalenFake, change: dict[str, Any]
) -> None:
    created = await app.http.post("/api/v1/connectors", json=_body(fake, {}), headers=ADMIN_AUTH)
    sid = created.json()["writeBackSubscription"]
    before = await app.subscriptions.get(uuid.UUID(sid))

    patched = await app.http.patch(
        f"/api/v1/subscriptions/{sid}?validate=false", json=change, headers=ADMIN_AUTH
    )
    deleted = await app.http.delete(f"/api/v1/subscriptions/{sid}", headers=ADMIN_AUTH)

    assert (patched.status_code, deleted.status_code) == (409, 409)
    assert patched.headers["content-type"] == "application/problem+json"
    assert f"PATCH /api/v1/connectors/{created.json()['id']}" in patched.json()["detail"]
    assert await app.subscriptions.get(uuid.UUID(sid)) == before


async def test_a_rest_connector_with_write_back_gets_a_subscription_for_the_types_it_names(
    app: App, fake: SignalenFake
) -> None:
    source = {"url": f"{fake.url}/zaken", "mapping": {"type": "nl.zaken.zaak.gewijzigd.v1", "fields": {}}}
    write_back = {
        "url": f"{fake.url}/api/zaken/{{subject}}",
        "method": "PATCH",
        "body": {"status": "data.state"},
    }
    body = {"kind": "rest", "organisatie": GEM_A, "scheduleSeconds": 3600, "enabled": False}

    created = await app.http.post(
        "/api/v1/connectors",
        json={
            **body,
            "config": {**source, "writeBack": {**write_back, "types": ["nl.zaken.status-verzoek.v1"]}},
        },
        headers=app.beheerder_a,
    )
    untyped = await app.http.post(
        "/api/v1/connectors",
        json={**body, "config": {**source, "writeBack": write_back}},
        headers=app.beheerder_a,
    )

    assert created.status_code == 201, created.text
    subscription = await app.subscriptions.get(uuid.UUID(created.json()["writeBackSubscription"]))
    assert subscription.types == ["nl.zaken.status-verzoek.v1"]
    assert subscription.filters == [{"exact": {"organisatie": GEM_A}}]
    assert subscription.sink == f"connector:{created.json()['id']}"
    assert untyped.status_code == 400 and "types" in untyped.json()["detail"]


async def test_a_connectors_write_back_concurrency_is_its_subscriptions_and_follows_a_change(
    app: App, fake: SignalenFake
) -> None:
    """``writeBack.maxConcurrency``: how many requests the system takes at once (Signalen's
    write-back was bound by the default 16 in flight: 347 status changes/s, 429/s with 32)."""
    created = await app.http.post(
        "/api/v1/connectors", json=_body(fake, {"maxConcurrency": 32}), headers=app.beheerder_a
    )
    assert created.status_code == 201, created.text
    sid = uuid.UUID(created.json()["writeBackSubscription"])
    before = (await app.subscriptions.get(sid)).max_concurrency
    changed = await app.http.patch(
        f"/api/v1/connectors/{created.json()['id']}",
        json={"config": {"writeBack": {"maxConcurrency": 8}}},
        headers=app.beheerder_a,
    )
    refused = await app.http.post(
        "/api/v1/connectors", json=_body(fake, {"maxConcurrency": 0}), headers=app.beheerder_a
    )

    assert changed.status_code == 200, changed.text
    assert (before, (await app.subscriptions.get(sid)).max_concurrency) == (32, 8)
    assert refused.status_code == 400 and "maxConcurrency" in refused.text
