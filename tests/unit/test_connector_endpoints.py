"""``GET /api/v1/connectors/{id}/runs`` and ``POST /api/v1/connectors/{id}/test`` over HTTP, on
the app wired with the in-memory twins (the test endpoint reaches the Signalen fake on
loopback through the real guarded egress), and the write-back subscription a connector with
``writeBack`` gets."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.adapters.memory import InMemoryConnectorStore, InMemoryFingerprintStore
from hub.ports.connectors import BatchCommit, Owner, SyncScope
from tests.support.connector_app import ADMIN_AUTH as AUTH
from tests.support.connector_app import ConnectorApp as App
from tests.support.connector_app import connector_app
from tests.support.signalen_fake import SignalenFake

ORG = "org-voorbeeldstad"


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    async with connector_app(tmp_path) as made:
        yield made


async def _signalen(
    app: App, signalen: SignalenFake, token: str | None = None, **config: Any
) -> dict[str, Any]:
    body = {
        "kind": "signalen",
        "organisatie": ORG,
        "scheduleSeconds": 3600,
        "enabled": False,
        "config": {"url": signalen.url, "auth": {"token": token or signalen.token}, **config},
    }
    response = await app.http.post("/api/v1/connectors", json=body, headers=AUTH)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_runs_are_listed_newest_first_with_counts_errors_and_checkpoints_and_page(
    app: App, signalen: SignalenFake
) -> None:
    cid = uuid.UUID((await _signalen(app, signalen))["id"])
    first = await app.runs.start_run(cid, None)
    scope = SyncScope("urn:x", ORG, str(cid))
    committed = BatchCommit(checkpoint={"updated_after": "t1"})  # as a committed batch sets it
    await InMemoryFingerprintStore(app.tables).commit(scope, Owner("connector", cid), committed)
    await app.runs.finish_run(
        first, status="failed", counts={"published": 3}, errors=[{"item": None, "message": "boom"}],
        diagnostics={"request": "GET /signals", "status": 503},
    )  # fmt: skip
    second = await app.runs.start_run(cid, {"updated_after": "t1"})

    page1 = (await app.http.get(f"/api/v1/connectors/{cid}/runs?limit=1", headers=AUTH)).json()
    page2 = (
        await app.http.get(f"/api/v1/connectors/{cid}/runs?limit=1&after={page1['next']}", headers=AUTH)
    ).json()

    (newest,) = page1["items"]
    assert (newest["id"], newest["status"], newest["finishedAt"]) == (str(second), "running", None)
    (oldest,) = page2["items"]
    assert oldest["id"] == str(first) and page2["next"] is None
    assert (oldest["status"], oldest["counts"], oldest["errors"]) == (
        "failed", {"published": 3}, [{"item": None, "message": "boom"}],
    )  # fmt: skip
    assert oldest["checkpoint"] == {"before": None, "after": {"updated_after": "t1"}}
    assert oldest["lastExchange"] == {"request": "GET /signals", "status": 503}


async def test_runs_of_an_unknown_connector_or_with_a_foreign_cursor_are_problems(app: App) -> None:
    missing = await app.http.get(f"/api/v1/connectors/{uuid.uuid4()}/runs", headers=AUTH)

    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")


async def test_a_cursor_this_api_did_not_hand_out_is_a_400(app: App, signalen: SignalenFake) -> None:
    cid = (await _signalen(app, signalen))["id"]

    response = await app.http.get(f"/api/v1/connectors/{cid}/runs?after=not-a-cursor", headers=AUTH)

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "cursor" in response.json()["detail"]


async def test_the_test_endpoint_reaches_signalen_with_the_token_and_publishes_nothing(
    app: App, signalen: SignalenFake
) -> None:
    signalen.add(3)
    cid = (await _signalen(app, signalen))["id"]

    response = await app.http.post(f"/api/v1/connectors/{cid}/test", headers=AUTH)

    assert response.status_code == 200, response.text
    assert response.json() == {"ok": True, "found": {"reachable": True, "count": 3}}
    assert len(signalen.requests) == 1 and signalen.patches == []


async def test_the_test_endpoint_names_a_refused_token_with_the_last_exchange_and_no_secret(
    app: App, signalen: SignalenFake
) -> None:
    cid = (await _signalen(app, signalen, token="wrong-token"))["id"]

    response = await app.http.post(f"/api/v1/connectors/{cid}/test", headers=AUTH)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is False and "401" in body["problem"]
    assert body["lastExchange"]["status"] == 401
    assert body["lastExchange"]["request"].startswith("GET ")
    assert "wrong-token" not in response.text


async def test_a_connector_with_write_back_gets_its_subscription_and_disabling_pauses_it(
    app: App, signalen: SignalenFake
) -> None:
    created = await _signalen(app, signalen, writeBack={"filters": [{"exact": {"source": "urn:moon"}}]})
    sid = uuid.UUID(created["writeBackSubscription"])

    paused = await app.subscriptions.get(sid)  # the connector was created disabled
    await app.http.patch(f"/api/v1/connectors/{created['id']}", json={"enabled": True}, headers=AUTH)
    active = await app.subscriptions.get(sid)

    assert paused.sink == f"connector:{created['id']}" and paused.status == "paused"
    assert paused.filters == [{"exact": {"organisatie": ORG}}, {"exact": {"source": "urn:moon"}}]
    assert active.status == "active"


async def test_a_write_back_filter_that_is_not_a_subscription_filter_is_a_400(
    app: App, signalen: SignalenFake
) -> None:
    body = {
        "kind": "signalen",
        "organisatie": ORG,
        "config": {"url": signalen.url, "auth": {"token": "t"}, "writeBack": {"filters": [{"exactly": {}}]}},
    }

    response = await app.http.post("/api/v1/connectors", json=body, headers=AUTH)

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "config.writeBack.filters"


WRITE_BACK = {
    "types": ["nl.zaken.status-verzoek.v1"],
    "method": "PATCH",
    "url": "http://127.0.0.1:9/api/zaken/{subject}/status",
    "body": {"status": "data.state"},
}


async def _rest(app: App, config: dict[str, Any]) -> httpx.Response:
    body = {"kind": "rest", "organisatie": ORG, "scheduleSeconds": 60, "config": config}
    return await app.http.post("/api/v1/connectors", json=body, headers=AUTH)


async def test_a_rest_connector_with_only_write_back_is_accepted_shown_as_not_polling_and_never_claimed(
    app: App,
) -> None:
    response = await _rest(app, {"writeBack": WRITE_BACK})
    polling = await _rest(
        app, {"url": "http://127.0.0.1:9/zaken", "mapping": {"type": "nl.zaken.zaak.v1", "fields": {}}}
    )

    assert response.status_code == 201, response.text
    created = response.json()
    assert (created["polls"], created["status"]["nextRunAt"]) == (False, None)
    assert (created["config"]["url"], created["config"]["mapping"]) == (None, None)
    subscription = await app.subscriptions.get(uuid.UUID(created["writeBackSubscription"]))
    assert subscription.sink == f"connector:{created['id']}" and subscription.status == "active"
    assert polling.json()["polls"] is True and polling.json()["status"]["nextRunAt"] is not None
    # Both are due now; the claim takes the polling one (the marker) and never the other.
    claimed = await InMemoryConnectorStore(app.tables).claim_due(10)
    assert [str(c.id) for c in claimed] == [polling.json()["id"]]
    listed = await app.http.get("/api/v1/connectors", headers=AUTH)
    assert [(c["id"], c["polls"]) for c in listed.json()["items"]] == [
        (created["id"], False),
        (polling.json()["id"], True),
    ]


async def test_running_or_testing_a_connector_that_only_writes_back_is_a_409_naming_its_deliveries(
    app: App,
) -> None:
    created = (await _rest(app, {"writeBack": WRITE_BACK})).json()

    run = await app.http.post(f"/api/v1/connectors/{created['id']}/run", headers=AUTH)
    test = await app.http.post(f"/api/v1/connectors/{created['id']}/test", headers=AUTH)

    for response in (run, test):
        assert response.status_code == 409
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["title"] == "Connector only writes back"
        detail = response.json()["detail"]
        assert f"/api/v1/subscriptions/{created['writeBackSubscription']}/deliveries" in detail


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({}, "nothing to do: set url and mapping to read the API, writeBack to apply hub events"),
        ({"writeBack": False}, "nothing to do"),
        ({"url": "http://127.0.0.1:9/zaken", "writeBack": WRITE_BACK}, "url and mapping go together"),
        (
            {"mapping": {"type": "nl.zaken.zaak.v1", "fields": {}}, "writeBack": WRITE_BACK},
            "url and mapping go together (url is missing)",
        ),
        (
            {
                "writeBack": WRITE_BACK,
                "paging": {"style": "page"},
                "incremental": {"param": "a", "field": "b"},
            },
            "paging, incremental only mean something when the connector reads the API",
        ),
    ],
)
async def test_a_rest_connector_without_a_source_and_write_back_or_with_half_a_source_is_a_400(
    app: App, config: dict[str, Any], says: str
) -> None:
    response = await _rest(app, config)

    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert says in problem["detail"]
    assert problem["errors"][0]["field"] == "config"
    assert app.tables.connectors == {}


async def test_a_patch_that_drops_the_source_side_stops_the_polling_and_one_that_drops_both_is_a_400(
    app: App,
) -> None:
    source = {"url": "http://127.0.0.1:9/zaken", "mapping": {"type": "nl.zaken.zaak.v1", "fields": {}}}
    created = (await _rest(app, {**source, "writeBack": WRITE_BACK})).json()
    path = f"/api/v1/connectors/{created['id']}"

    dropped = await app.http.patch(path, json={"config": {"url": None, "mapping": None}}, headers=AUTH)
    emptied = await app.http.patch(path, json={"config": {"writeBack": False}}, headers=AUTH)
    restored = await app.http.patch(path, json={"config": source}, headers=AUTH)

    assert created["polls"] is True
    assert dropped.status_code == 200, dropped.text
    assert (dropped.json()["polls"], dropped.json()["status"]["nextRunAt"]) == (False, None)
    assert emptied.status_code == 400 and "nothing to do" in emptied.json()["detail"]
    assert restored.json()["polls"] is True
    assert [str(c.id) for c in await InMemoryConnectorStore(app.tables).claim_due(10)] == [created["id"]]


async def test_a_write_back_target_outside_the_connectors_allow_list_is_refused_when_saved(app: App) -> None:
    response = await _rest(app, {"writeBack": {**WRITE_BACK, "url": "http://10.1.2.3/api/zaken/{subject}"}})

    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["title"] == "URL refused"
    assert problem["errors"][0]["field"] == "config.writeBack.url"
    assert app.tables.connectors == {}


async def test_a_proxy_password_is_write_only_shown_masked_and_kept_when_sent_back_as_shown(
    app: App, signalen: SignalenFake
) -> None:
    """An FSC outway's (or any proxy's) password in ``auth.proxy`` is a secret like the token."""
    outway = "http://koppelhub:s3cret@outway.example:8443"
    made = await _signalen(app, signalen, auth={"token": signalen.token, "proxy": outway})
    path = f"/api/v1/connectors/{made['id']}"
    shown = await app.http.get(path, headers=AUTH)
    listed = await app.http.get("/api/v1/connectors", headers=AUTH)
    for response in (shown, listed):
        assert "s3cret" not in response.text
    assert made["config"]["auth"]["proxy"] == "http://koppelhub:***@outway.example:8443"
    assert "s3cret" not in str(made)

    sent_back = await app.http.patch(path, json={"config": shown.json()["config"]}, headers=AUTH)
    assert sent_back.status_code == 200, sent_back.text
    stored = InMemoryConnectorStore(app.tables)
    kept = (await stored.get(uuid.UUID(made["id"]))).config["auth"]
    assert (kept["proxy"], kept["token"]) == (outway, signalen.token)

    new = "http://koppelhub:n1euw@outway.example:8443"
    changed = await app.http.patch(
        path,
        json={"config": {**shown.json()["config"], "auth": {"token": "********", "proxy": new}}},
        headers=AUTH,
    )
    assert changed.status_code == 200 and "n1euw" not in changed.text
    assert (await stored.get(uuid.UUID(made["id"]))).config["auth"]["proxy"] == new


async def test_a_credential_header_of_a_rest_connector_is_write_only_and_kept_when_sent_back(
    app: App,
) -> None:
    """Headers are where some APIs want their key; its value is shown masked, as auth's secrets."""
    source = {"url": "http://127.0.0.1:9/zaken", "mapping": {"type": "nl.zaken.zaak.v1", "fields": {}}}
    headers = {"X-Api-Key": "key-s3cret", "X-Bron": "koppelhub"}
    write_back = {**WRITE_BACK, "headers": {"Authorization": "Bearer wb-s3cret"}}
    created = await _rest(app, {**source, "headers": headers, "writeBack": write_back})
    assert created.status_code == 201, created.text
    shown = created.json()["config"]
    assert "s3cret" not in created.text
    assert shown["headers"] == {"X-Api-Key": "********", "X-Bron": "koppelhub"}
    assert shown["writeBack"]["headers"] == {"Authorization": "********"}

    path = f"/api/v1/connectors/{created.json()['id']}"
    sent_back = {**shown, "headers": {**shown["headers"], "X-Bron": "hub"}}
    changed = await app.http.patch(path, json={"config": sent_back}, headers=AUTH)
    assert changed.status_code == 200, changed.text
    stored = (await InMemoryConnectorStore(app.tables).get(uuid.UUID(created.json()["id"]))).config
    assert stored["headers"] == {"X-Api-Key": "key-s3cret", "X-Bron": "hub"}
    assert stored["writeBack"]["headers"] == {"Authorization": "Bearer wb-s3cret"}


async def test_a_file_location_with_a_nul_byte_is_a_400(tmp_path: Path) -> None:
    """No file has one; checking it against the file roots raised a ValueError (a 500)."""
    body = {"kind": "csv", "organisatie": ORG, "scheduleSeconds": 60,
            "config": {"location": f"{tmp_path}/a\u0000b.csv", "objecttype": "gebruik"}}  # fmt: skip
    async with connector_app(tmp_path, file_roots=(tmp_path,)) as made:
        response = await made.http.post("/api/v1/connectors", json=body, headers=AUTH)
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["field"] == "config.location"
