"""List filters and the import history through the API (issue 11), on the in-memory stores."""

from __future__ import annotations

import base64
import uuid

import httpx

from hub.adapters.memory import InMemoryConnectorTables, InMemoryImportStore, InMemoryOutbox
from schemas import validate_event
from tests.contract.delivery_harness import LEASE, outcome
from tests.support import hub_api
from tests.support.memory_app import ADMIN_TOKEN, MemoryApp

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def _subscribe(client: httpx.AsyncClient, sink: str) -> str:
    response = await client.post(
        "/api/v1/subscriptions", json={"sink": sink}, params={"validate": "false"}, headers=AUTH
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _ids(client: httpx.AsyncClient, **params: str) -> list[str]:
    response = await client.get("/api/v1/subscriptions", params=params, headers=AUTH)
    assert response.status_code == 200, response.text
    return [s["id"] for s in response.json()["items"]]


async def test_subscriptions_filter_on_status_and_sink_prefix(client: httpx.AsyncClient) -> None:
    a = await _subscribe(client, "http://127.0.0.1:9001/a")
    b = await _subscribe(client, "http://127.0.0.1:9002/b")
    paused = await client.patch(f"/api/v1/subscriptions/{b}", json={"enabled": False}, headers=AUTH)
    assert paused.status_code == 200, paused.text

    assert await _ids(client, status="paused") == [b]
    assert await _ids(client, status="disabled") == []
    assert await _ids(client, sink="http://127.0.0.1:9001/") == [a]
    assert await _ids(client) == [a, b]


async def test_subscriptions_filter_on_their_organisation(client: httpx.AsyncClient) -> None:
    mine = await client.post(
        "/api/v1/subscriptions",
        json={"sink": "http://127.0.0.1:9001/a", "organisatie": "gem-a"},
        params={"validate": "false"},
        headers=AUTH,
    )
    assert mine.status_code == 201, mine.text
    hub_wide = await _subscribe(client, "http://127.0.0.1:9002/b")

    assert await _ids(client, organisatie="gem-a") == [mine.json()["id"]]
    assert await _ids(client, organisatie="gem-b") == []
    assert await _ids(client) == [mine.json()["id"], hub_wide]


async def test_an_unknown_subscription_filter_or_status_is_a_400(client: httpx.AsyncClient) -> None:
    await _subscribe(client, "http://127.0.0.1:9001/a")

    unknown = await client.get("/api/v1/subscriptions", params={"staus": "active"}, headers=AUTH)
    bad_status = await client.get("/api/v1/subscriptions", params={"status": "broken"}, headers=AUTH)

    assert unknown.status_code == 400
    assert unknown.headers["content-type"] == "application/problem+json"
    assert "'staus'" in unknown.json()["detail"] and "status, sink" in unknown.json()["detail"]
    assert bad_status.status_code == 400 and "active, paused, disabled" in bad_status.json()["detail"]


async def test_a_subscription_shows_its_health(client: httpx.AsyncClient, memory: MemoryApp) -> None:
    sid = await _subscribe(client, "http://127.0.0.1:9001/a")
    healthy = (await client.get(f"/api/v1/subscriptions/{sid}", headers=AUTH)).json()
    assert (healthy["consecutiveFailures"], healthy["lastError"], healthy["failingSince"]) == (0, None, None)
    memory.database.publish([validate_event(hub_api.event())])
    outbox = InMemoryOutbox(memory.database)
    [claim] = await outbox.claim(10, LEASE, {uuid.UUID(sid): 10})

    await outbox.record([outcome(claim, "failed", code=503)])

    failing = (await client.get(f"/api/v1/subscriptions/{sid}", headers=AUTH)).json()
    health = (failing["status"], failing["consecutiveFailures"], failing["lastError"])
    assert health == ("active", 1, "http_503")
    assert failing["failingSince"] is not None
    listed = (await client.get("/api/v1/subscriptions", headers=AUTH)).json()["items"]
    assert [s["consecutiveFailures"] for s in listed] == [1]


async def test_imports_list_newest_first_with_status_and_counts(
    client: httpx.AsyncClient, memory: MemoryApp
) -> None:
    store = InMemoryImportStore(InMemoryConnectorTables())
    memory.app.state.ctx.imports = store
    made = []
    for n in range(3):
        record = await store.create(
            import_id=uuid.uuid4(),
            organisatie="org-1",
            objecttype="gebruik",
            mode="incremental",
            filename=f"{n}.csv",
            path=f"/tmp/{n}.csv",
            options={},
        )
        made.append(str(record.id))
    await store.finish(uuid.UUID(made[0]), error=None, counts={"read": 2, "published": 2})

    first = await client.get("/api/v1/imports", params={"limit": 2}, headers=AUTH)
    assert first.status_code == 200, first.text
    rest = await client.get(first.json()["next"], headers=AUTH)

    items = first.json()["items"] + rest.json()["items"]
    assert [i["id"] for i in items] == made[::-1]
    assert (items[-1]["status"], items[-1]["counts"]["published"]) == ("done", 2)
    assert items[0]["status"] == "queued" and rest.json()["next"] is None


async def test_a_cursor_this_api_did_not_hand_out_is_a_400_however_it_is_made(
    client: httpx.AsyncClient,
) -> None:
    """Deeply nested JSON in a cursor made the decoder recurse until Python stopped it (a 500)."""
    nested = base64.urlsafe_b64encode(b"[" * 2000).decode()
    for path in ("/api/v1/subscriptions", "/api/v1/organisaties", "/api/v1/gebruik"):
        response = await client.get(path, params={"cursor": nested}, headers=AUTH)
        assert response.status_code == 400, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
