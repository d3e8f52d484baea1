"""API tokens over HTTP, and what a municipality's tokens may not do (issue 12).

Two API processes share one database: a token revoked through one is refused by the other
within 5 s. A systeem token of one municipality cannot overwrite another's gebruik, nor
publish for a source it is not registered for. A federatie token (another hub) reads only the
pull feeds it names."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from hub.bootstrap import HubProcess
from hub.settings import Settings
from tests.support.hub_api import eventually, landscape_event, publish, subscribe
from tests.support.sink import WebhookSink

pytestmark = pytest.mark.e2e

SYS_A = "urn:nld:gem-a:systeem:zaken"
SYS_B = "urn:nld:gem-b:systeem:zaken"


async def create(client: httpx.AsyncClient, auth: dict[str, str], **body: Any) -> httpx.Response:
    return await client.post("/api/v1/tokens", json=body, headers=auth)


def bearer(token: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token['token']}"}


@pytest.fixture
async def second_api(hub: HubProcess, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """Another API process on the same database (its own token cache)."""
    assert settings.kafka.bootstrap and settings.database_url
    other = HubProcess(settings, settings.kafka.bootstrap, settings.database_url, roles=("api",))
    await other.start()
    await other.wait_started()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{other.api_port}", timeout=30) as http:
            yield http
    finally:
        await other.shutdown(drain_timeout=5)


async def test_a_token_is_shown_once_listed_without_secret_and_refused_by_every_api_process_after_revocation(
    client: httpx.AsyncClient, second_api: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await create(client, auth, name="beheer a", role="gebruik-beheerder", organisatie="gem-a")
    assert response.status_code == 201, response.text
    token = response.json()
    assert token["role"] == "gebruik-beheerder" and token["organisatie"] == "gem-a"
    listed = (await client.get("/api/v1/tokens", headers=auth)).json()["items"]
    assert [t["id"] for t in listed] == [token["id"]] and "token" not in listed[0]
    assert token["token"] not in repr(listed)

    for api in (client, second_api):  # both processes know it (and cache it)
        assert (await api.get("/api/v1/tokens", headers=bearer(token))).status_code == 200

    revoked_at = time.monotonic()
    assert (await client.delete(f"/api/v1/tokens/{token['id']}", headers=auth)).status_code == 204

    async def refused_everywhere() -> bool:
        answers = [await api.get("/api/v1/tokens", headers=bearer(token)) for api in (client, second_api)]
        return all(a.status_code == 401 for a in answers)

    await eventually(refused_everywhere, timeout=5, what="the revoked token refused by both processes")
    assert time.monotonic() - revoked_at < 5


async def test_a_municipality_manages_only_its_own_tokens_and_roles(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    beheer_a = (await create(client, auth, name="a", role="gebruik-beheerder", organisatie="gem-a")).json()
    beheer_b = (await create(client, auth, name="b", role="gebruik-beheerder", organisatie="gem-b")).json()
    mine = await create(
        client, bearer(beheer_a), name="zaken", role="systeem", organisatie="gem-a", sources=[SYS_A]
    )
    assert mine.status_code == 201, mine.text

    theirs = await create(
        client, bearer(beheer_a), name="x", role="systeem", organisatie="gem-b", sources=[SYS_B]
    )
    assert theirs.status_code == 403 and "gebruik-beheerder" in theirs.json()["detail"]
    higher = await create(client, bearer(beheer_a), name="x", role="functioneel-beheerder")
    assert higher.status_code == 403
    assert (
        await client.delete(f"/api/v1/tokens/{mine.json()['id']}", headers=bearer(beheer_b))
    ).status_code == 404
    seen_by_b = (await client.get("/api/v1/tokens", headers=bearer(beheer_b))).json()["items"]
    assert [t["id"] for t in seen_by_b] == [beheer_b["id"]]

    raadpleger = (await create(client, auth, name="r", role="gebruik-raadpleger", organisatie="gem-a")).json()
    refused = await client.get("/api/v1/tokens", headers=bearer(raadpleger))
    assert refused.status_code == 403
    assert "gebruik-raadpleger" in refused.json()["detail"] and "tokens-beheren" in refused.json()["detail"]
    subs = await client.get("/api/v1/subscriptions", headers=bearer(raadpleger))
    assert subs.status_code == 403 and "externe-koppelingen-beheren" in subs.json()["detail"]


async def test_a_systeem_cannot_overwrite_another_municipalitys_gebruik_nor_publish_for_another_source(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    gebruik_a = {"id": "g-a", "afnemer": "gem-a", "applicatie": "app", "status": "In productie",
                 "versie": "3.1", "interneAantekening": "privé"}  # fmt: skip
    assert (
        await publish(client, auth, landscape_event("gebruik", "vastgelegd", gebruik_a))
    ).status_code == 202

    async def stored() -> bool:
        return (await client.get("/api/v1/gebruik/g-a", headers=auth)).status_code == 200

    await eventually(stored, what="gem-a's gebruik in the landscape")
    sys_b = (
        await create(client, auth, name="zaken b", role="systeem", organisatie="gem-b", sources=[SYS_B])
    ).json()

    overwrite = {"id": "g-a", "afnemer": "gem-b", "applicatie": "app", "status": "Uitgefaseerd"}
    response = await publish(
        client, bearer(sys_b), landscape_event("gebruik", "vastgelegd", overwrite, source=SYS_B)
    )
    assert response.status_code == 403 and "gem-a" in response.json()["detail"]
    withdraw = landscape_event("organisatie", "ingetrokken", {"id": "gem-a"}, source=SYS_B)
    assert (await publish(client, bearer(sys_b), withdraw)).status_code == 403
    posing = landscape_event("gebruik", "vastgelegd", {**overwrite, "id": "g-b"}, source=SYS_A)
    response = await publish(client, bearer(sys_b), posing)
    assert response.status_code == 403 and SYS_A in response.json()["detail"]
    own = landscape_event("gebruik", "vastgelegd", {**overwrite, "id": "g-b"}, source=SYS_B)
    assert (await publish(client, bearer(sys_b), own)).status_code == 202

    async def own_stored() -> bool:
        return (await client.get("/api/v1/gebruik/g-b", headers=auth)).status_code == 200

    await eventually(own_stored, what="gem-b's own gebruik")  # the marker: earlier refusals are long past
    kept = (await client.get("/api/v1/gebruik/g-a", headers=auth)).json()
    assert kept["afnemer"] == "gem-a" and kept["versie"] == "3.1" and kept["interneAantekening"] == "privé"


async def test_a_federatie_token_reads_only_the_pull_feeds_it_names_and_no_private_fields(
    client: httpx.AsyncClient, auth: dict[str, str], sink: WebhookSink
) -> None:
    """Another hub's least privilege (issue 14): the pull feed of the subscriptions its token
    names, hub-wide or an organisation's, without private fields; nothing else, not even a read
    of the landscape or of the subscription itself."""
    gebruik = "nl.softwarecatalogus.gebruik.vastgelegd.v1"
    hub_wide = await subscribe(client, auth, sink.url, types=[gebruik], organisatie=None)
    own = await subscribe(client, auth, sink.url, types=[gebruik], organisatie="gem-a")
    other = await subscribe(client, auth, sink.url, types=[gebruik], organisatie=None)
    for sources in ([], ["not-a-subscription-id"]):
        refused = await create(
            client, auth, name="regio", role="federatie", organisatie="regio", sources=sources
        )
        assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == "sources", refused.text
    made = await create(client, auth, name="regio-hub", role="federatie", organisatie="regio",
                        sources=[hub_wide["id"], own["id"]])  # fmt: skip
    assert made.status_code == 201, made.text
    regio = bearer(made.json())
    data = {"id": "g-fed", "afnemer": "gem-a", "applicatie": "app-1", "status": "In productie",
            "interneAantekening": "alleen voor gem-a"}  # fmt: skip
    assert (
        await publish(client, auth, landscape_event("gebruik", "vastgelegd", data, organisatie="gem-a"))
    ).status_code == 202

    async def archived() -> bool:
        page = await client.get(f"/api/v1/subscriptions/{own['id']}/events", headers=auth)
        return [e["subject"] for e in page.json()["items"]] == ["g-fed"]

    await eventually(archived, what="the gebruik in the archive")
    (as_owner,) = (await client.get(f"/api/v1/subscriptions/{own['id']}/events", headers=auth)).json()[
        "items"
    ]
    assert (
        as_owner["data"]["interneAantekening"] == "alleen voor gem-a"
    )  # the owner's feed, read by a manager
    for granted in (hub_wide, own):
        page = await client.get(f"/api/v1/subscriptions/{granted['id']}/events", headers=regio)
        assert page.status_code == 200, page.text
        (item,) = page.json()["items"]
        assert item["subject"] == "g-fed" and "interneAantekening" not in item["data"]
    assert (await client.get(f"/api/v1/subscriptions/{other['id']}/events", headers=regio)).status_code == 404
    for method, path in [("GET", f"/api/v1/subscriptions/{hub_wide['id']}"), ("GET", "/api/v1/subscriptions"),
                         ("GET", "/api/v1/applicaties"), ("GET", "/api/v1/tokens"),
                         ("POST", f"/api/v1/subscriptions/{hub_wide['id']}/replay")]:  # fmt: skip
        answer = await client.request(method, path, headers=regio, json={} if method == "POST" else None)
        assert answer.status_code == 403, (method, path, answer.text)
    published = await publish(client, regio, landscape_event("gebruik", "vastgelegd", {**data, "id": "g-2"}))
    assert published.status_code == 403
