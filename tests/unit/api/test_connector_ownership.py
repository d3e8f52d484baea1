"""Connectors belong to an organisation (issue 12, "Ownership"): a gebruik-beheerder creates,
reads, changes, runs and deletes its own organisation's connectors only; another
organisation's is a 404 (its existence is not revealed), the list shows only its own, and
creating one for another organisation is a 403 naming the role and the right it lacks. On the
app wired with in-memory twins and API tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.connector_app import ADMIN_AUTH, ConnectorApp, connector_app

SOURCE = {"url": "http://127.0.0.1:9/zaken", "mapping": {"type": "nl.zaken.zaak.gewijzigd.v1", "fields": {}}}


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[ConnectorApp]:
    async with connector_app(tmp_path) as made:
        yield made


def _connector(organisatie: str) -> dict[str, object]:
    return {"kind": "rest", "organisatie": organisatie, "scheduleSeconds": 3600, "enabled": False,
            "config": SOURCE}  # fmt: skip


async def test_a_municipality_manages_only_its_own_connectors_and_never_learns_of_anothers(
    app: ConnectorApp,
) -> None:
    http = app.http
    beheer_a, beheer_b = await app.bearer("gem-a"), await app.bearer("gem-b")
    raadpleger_a = await app.bearer("gem-a", "gebruik-raadpleger")
    made_a = await http.post("/api/v1/connectors", json=_connector("gem-a"), headers=beheer_a)
    made_b = await http.post("/api/v1/connectors", json=_connector("gem-b"), headers=beheer_b)
    assert (made_a.status_code, made_b.status_code) == (201, 201), made_a.text
    path_a = f"/api/v1/connectors/{made_a.json()['id']}"

    for_another = await http.post("/api/v1/connectors", json=_connector("gem-a"), headers=beheer_b)
    assert for_another.status_code == 403
    assert "gebruik-beheerder" in for_another.json()["detail"] and "gem-a" in for_another.json()["detail"]
    not_allowed = await http.get("/api/v1/connectors", headers=raadpleger_a)
    assert not_allowed.status_code == 403
    detail = not_allowed.json()["detail"]
    assert "gebruik-raadpleger" in detail and "lacks the right externe-koppelingen-beheren" in detail

    hidden = [
        await http.get(path_a, headers=beheer_b),
        await http.patch(path_a, json={"enabled": True}, headers=beheer_b),
        await http.post(f"{path_a}/run", headers=beheer_b),
        await http.get(f"{path_a}/runs", headers=beheer_b),
        await http.delete(path_a, headers=beheer_b),
    ]
    assert [r.status_code for r in hidden] == [404] * len(hidden), [r.text for r in hidden]
    assert all("gem-a" not in r.text for r in hidden)

    listed_b = (await http.get("/api/v1/connectors", headers=beheer_b)).json()["items"]
    listed_a = (await http.get("/api/v1/connectors?organisatie=gem-b", headers=beheer_a)).json()["items"]
    everything = (await http.get("/api/v1/connectors", headers=ADMIN_AUTH)).json()["items"]
    assert [c["id"] for c in listed_b] == [made_b.json()["id"]]
    assert listed_a == []  # a filter cannot reach another's (as for subscriptions)
    assert {c["id"] for c in everything} == {made_a.json()["id"], made_b.json()["id"]}

    assert (await http.patch(path_a, json={"scheduleSeconds": 600}, headers=beheer_a)).status_code == 200
    assert (await http.delete(path_a, headers=beheer_a)).status_code == 204


@pytest.mark.parametrize(
    ("kind", "config"),
    [
        ("csv", {"location": "http://127.0.0.1:9/rc.csv", "objecttype": "referentiecomponent"}),
        ("ameff", {"location": "http://127.0.0.1:9/gemma.xml", "gemma": True}),
        ("rest", {"url": "http://127.0.0.1:9/s", "mapping": {"objecttype": "standaard", "fields": {}}}),
    ],
)
async def test_a_connector_that_records_what_its_creator_may_not_record_is_a_403_as_the_import_is(
    app: ConnectorApp, kind: str, config: dict[str, object]
) -> None:
    beheer_a = await app.bearer("gem-a")
    body = {"kind": kind, "organisatie": "gem-a", "scheduleSeconds": 3600, "enabled": False, "config": config}

    refused = await app.http.post("/api/v1/connectors", json=body, headers=beheer_a)
    allowed = await app.http.post("/api/v1/connectors", json=body, headers=ADMIN_AUTH)

    assert refused.status_code == 403, refused.text
    assert "gemma-vastleggen" in refused.json()["detail"], refused.text
    assert allowed.status_code == 201, allowed.text
    path = f"/api/v1/connectors/{allowed.json()['id']}"
    # Nor may the organisation's own beheerder turn a gebruik connector into one of them.
    gebruik = {**body, "config": {"location": "http://127.0.0.1:9/g.csv", "objecttype": "gebruik"}}
    if kind == "csv":
        made = await app.http.post("/api/v1/connectors", json=gebruik, headers=beheer_a)
        assert made.status_code == 201, made.text
        changed = await app.http.patch(
            f"/api/v1/connectors/{made.json()['id']}",
            json={"config": {"objecttype": "standaard"}},
            headers=beheer_a,
        )
        assert changed.status_code == 403, changed.text
    assert (await app.http.get(path, headers=ADMIN_AUTH)).status_code == 200


@pytest.mark.parametrize(
    "passed",
    [
        "nl.softwarecatalogus.referentiecomponent.vastgelegd.v1",  # past the rights checks
        "nl.softwarecatalogus.applicatie.gewijzigd.v1",  # a derived event: the hub's own
        "nl.softwarecatalogus.gebruik.voorgesteld.v1",  # its data unchecked
        "nl.koppelhub.delivery.dead.v1",  # an alert
    ],
)
async def test_a_rest_connector_may_not_pass_landscape_events_through_past_the_rights_checks(
    app: ConnectorApp, passed: str
) -> None:
    mapping = {"type": passed, "fields": {}}
    body = {"kind": "rest", "organisatie": "gem-a", "scheduleSeconds": 3600, "enabled": False,
            "config": {"url": "http://127.0.0.1:9/s", "mapping": mapping}}  # fmt: skip

    refused = await app.http.post("/api/v1/connectors", json=body, headers=ADMIN_AUTH)

    assert refused.status_code == 400, refused.text
    assert refused.json()["errors"][0]["field"].startswith("config.mapping")
    assert "objecttype" in refused.json()["detail"]
