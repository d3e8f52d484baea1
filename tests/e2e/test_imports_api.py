"""Imports and connectors through the HTTP API of a whole hub (api, projector, dispatcher and
connectors in this process, on the real broker and database)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from hub.adapters.postgres.engine import create_engine
from hub.adapters.postgres.tables import event_archive
from hub.bootstrap import HubProcess
from hub.settings import ConnectorSettings, Settings
from tests.support.ameff import sample
from tests.support.hub_api import eventually, run_import, subscribe
from tests.support.sink import WebhookSink

pytestmark = pytest.mark.e2e
ORG = "org-voorbeeldstad"
HEADER = "id;afnemer;applicatie;status;versie\r\n"


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    files = tmp_path / "bronnen"
    files.mkdir()
    return settings.model_copy(
        update={"connectors": ConnectorSettings(poll_seconds=0.2, file_roots=[files], backoff_seconds=0.5)}
    )


def gebruik_csv(n: int, bad: dict[int, str] | None = None, major: int = 1) -> bytes:
    lines = [HEADER]
    for i in range(n):
        status = (bad or {}).get(i, "In productie")
        lines.append(f"g-{i};{ORG};app-{i};{status};{major}.{i}\r\n")
    return ("\ufeff" + "".join(lines)).encode()


async def upload(client: httpx.AsyncClient, auth: dict[str, str], body: bytes, **form: str) -> dict[str, Any]:
    return await run_import(
        client, auth, body, "gebruik.csv", **{"objecttype": "gebruik", "organisatie": ORG, **form}
    )


async def archived(settings: Settings, event_type: str) -> int:
    assert settings.database_url
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            query = select(func.count()).select_from(event_archive).where(event_archive.c.type == event_type)
            return int((await conn.execute(query)).scalar_one())
    finally:
        await engine.dispose()


async def test_an_upload_with_bad_rows_publishes_the_good_ones_and_notifies_only_changes(
    hub: HubProcess, client: httpx.AsyncClient, auth: dict[str, str], sink: WebhookSink, settings: Settings
) -> None:
    await subscribe(client, auth, sink.url, types=["nl.softwarecatalogus.gebruik.vastgelegd.v1"])

    first = await upload(client, auth, gebruik_csv(6, bad={2: "kapot", 4: "in productie"}))

    assert first["status"] == "done", first
    assert first["counts"] == {"read": 6, "published": 4, "unchanged": 0, "invalid": 2, "withdrawn": 0}
    assert [(e["row"], e["column"]) for e in first["errors"]] == [(4, "status"), (6, "status")]
    await eventually(lambda: posted(sink, 4), what="four notifications")
    report = await client.get(first["errorReport"], headers=auth)
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/csv")
    assert list(csv.reader(io.StringIO(report.text.lstrip("\ufeff"))))[1][:2] == ["4", "status"]

    again = await upload(client, auth, gebruik_csv(6, bad={2: "kapot", 4: "in productie"}))
    assert again["counts"]["published"] == 0 and again["counts"]["unchanged"] == 4

    fixed = await upload(client, auth, gebruik_csv(6), mode="full")
    assert fixed["counts"]["published"] == 2
    await eventually(lambda: posted(sink, 6), what="two more notifications")
    # The markers: every row changed once more. Notifications keep their order per key, so once
    # each key's marker is in, whatever the re-import had made would have come before it.
    marked = await upload(client, auth, gebruik_csv(6, major=2))
    assert marked["counts"]["published"] == 6
    await eventually(lambda: posted(sink, 12), what="six markers")
    versions: dict[str, list[str]] = {}
    for r in sink.delivered:
        versions.setdefault(r.json()["subject"], []).append(r.json()["data"]["versie"])
    assert versions == {f"g-{i}": [f"1.{i}", f"2.{i}"] for i in range(6)}  # the re-import notified nobody
    assert await archived(settings, "nl.softwarecatalogus.gebruik.vastgelegd.v1") == 12

    smaller = await upload(client, auth, gebruik_csv(3), mode="full")
    assert smaller["counts"]["withdrawn"] == 3
    await eventually(
        lambda: _equals(archived(settings, "nl.softwarecatalogus.gebruik.ingetrokken.v1"), 3),
        what="three withdrawals projected",
    )


async def posted(sink: WebhookSink, n: int) -> bool:
    return len([r for r in sink.delivered if r.method == "POST"]) == n


async def _equals(value: Any, expected: int) -> bool:
    return bool(await value == expected)


async def test_bad_uploads_get_a_problem_not_a_500(
    api_client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    cases = [
        ({"objecttype": "fiets", "organisatie": ORG}, b"id\n", "objecttype"),
        ({"objecttype": "gebruik", "organisatie": ORG, "mode": "alles"}, b"id\n", "mode"),
        ({"objecttype": "gebruik", "organisatie": ORG}, b"", "empty"),
    ]
    for form, body, word in cases:
        response = await api_client.post(
            "/api/v1/imports", data=form, files={"file": ("x.csv", body, "text/csv")}, headers=auth
        )
        assert response.status_code == 400, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert word in response.text
    missing = await api_client.get("/api/v1/imports/00000000-0000-0000-0000-000000000000", headers=auth)
    assert missing.status_code == 404
    anonymous = await api_client.post("/api/v1/imports", data={"objecttype": "gebruik", "organisatie": ORG})
    assert anonymous.status_code == 401


async def test_a_malformed_ameff_upload_fails_with_line_and_column_and_publishes_nothing(
    client: httpx.AsyncClient, auth: dict[str, str], settings: Settings
) -> None:
    body = (
        b'<?xml version="1.0"?><model xmlns="http://www.opengroup.org/xsd/archimate/3.0/"><elements></model>'
    )
    response = await client.post(
        "/api/v1/imports",
        data={"objecttype": "ameff", "organisatie": ORG},
        files={"file": ("model.xml", body, "application/xml")},
        headers=auth,
    )
    assert response.status_code == 202
    import_id = response.json()["id"]

    async def failed() -> bool:
        return bool(
            (await client.get(f"/api/v1/imports/{import_id}", headers=auth)).json()["status"] == "failed"
        )

    await eventually(failed, what="the import to fail")
    result = (await client.get(f"/api/v1/imports/{import_id}", headers=auth)).json()
    assert "line 1, column" in result["error"]
    assert result["counts"]["published"] == 0


async def test_templates_download_as_csv_and_xlsx(
    api_client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    csv_template = await api_client.get("/api/v1/imports/templates/koppeling.csv", headers=auth)
    xlsx_template = await api_client.get("/api/v1/imports/templates/gebruik.xlsx", headers=auth)
    unknown = await api_client.get("/api/v1/imports/templates/fiets.csv", headers=auth)

    assert csv_template.status_code == 200 and csv_template.text.lstrip("\ufeff").startswith(
        "id,applicatieA,"
    )
    assert xlsx_template.status_code == 200 and xlsx_template.content[:2] == b"PK"
    assert unknown.status_code == 404


async def test_a_connector_is_managed_through_the_api_and_runs_on_request(
    hub: HubProcess, client: httpx.AsyncClient, auth: dict[str, str], settings: Settings
) -> None:
    source = settings.connectors.file_roots[0] / "gebruik.csv"
    source.write_bytes(gebruik_csv(3))
    body = {
        "kind": "csv",
        "organisatie": ORG,
        "scheduleSeconds": 3600,
        "config": {"location": str(source), "objecttype": "gebruik", "authorization": "Bearer geheim"},
    }
    created = await client.post("/api/v1/connectors", json=body, headers=auth)
    assert created.status_code == 201, created.text
    connector = created.json()
    assert connector["config"]["authorization"] == "********" and "geheim" not in created.text

    async def succeeded() -> bool:
        status = (await client.get(f"/api/v1/connectors/{connector['id']}", headers=auth)).json()["status"]
        return bool(status["lastSuccessAt"] and status["eventsPublished"] == 3)

    await eventually(succeeded, what="the first run")  # a new connector is due at once

    patched = await client.patch(
        f"/api/v1/connectors/{connector['id']}", json={"config": {"mode": "full"}}, headers=auth
    )
    assert patched.status_code == 200 and patched.json()["config"]["mode"] == "full"
    assert patched.json()["config"]["authorization"] == "********"  # kept although left out
    source.write_bytes(gebruik_csv(2))
    run = await client.post(f"/api/v1/connectors/{connector['id']}/run", headers=auth)
    assert run.status_code == 202

    async def withdrew() -> bool:
        status = (await client.get(f"/api/v1/connectors/{connector['id']}", headers=auth)).json()["status"]
        return bool(status["lastRun"] and status["lastRun"]["withdrawn"] == 1)

    await eventually(withdrew, what="the full run to withdraw the removed row")
    listed = (await client.get("/api/v1/connectors", params={"organisatie": ORG}, headers=auth)).json()
    assert [c["id"] for c in listed["items"]] == [connector["id"]]
    assert (await client.delete(f"/api/v1/connectors/{connector['id']}", headers=auth)).status_code == 204
    assert (await client.get(f"/api/v1/connectors/{connector['id']}", headers=auth)).status_code == 404


async def test_bad_connector_configs_are_refused_with_the_field(
    api_client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    cases = [
        ({"kind": "ftp", "organisatie": ORG, "config": {}}, "kind"),
        ({"kind": "csv", "organisatie": ORG, "config": {"location": "/x.csv"}}, "config.objecttype"),
        (
            {
                "kind": "csv",
                "organisatie": ORG,
                "config": {"location": "/etc/passwd", "objecttype": "gebruik"},
            },
            "config.location",
        ),
        (
            {"kind": "ameff", "organisatie": ORG, "config": {"location": "http://169.254.169.254/latest"}},
            "config.location",
        ),
    ]
    for body, field in cases:
        response = await api_client.post("/api/v1/connectors", json=body, headers=auth)
        assert response.status_code == 400, response.text
        assert field in {e["field"] for e in response.json()["errors"]}, response.text


async def upload_ameff(client: httpx.AsyncClient, auth: dict[str, str], body: bytes) -> dict[str, Any]:
    return await run_import(client, auth, body, "model.xml", objecttype="ameff", organisatie=ORG)


async def test_an_architecture_tool_export_becomes_applicaties_gebruik_and_koppelingen(
    client: httpx.AsyncClient, auth: dict[str, str], settings: Settings
) -> None:
    body = sample("archisurance.xml").read_bytes()

    first = await upload_ameff(client, auth, body)
    again = await upload_ameff(client, auth, body)

    assert first["status"] == "done", first
    assert first["report"]["applicatie"] == {
        "found": 10,
        "created": 10,
        "updated": 0,
        "unchanged": 0,
        "removed": 0,
    }
    assert first["report"]["gebruik"]["created"] == 10 and first["report"]["koppeling"]["created"] == 7
    assert again["counts"]["published"] == 0 and again["counts"]["unchanged"] == 27
    await eventually(
        lambda: _equals(archived(settings, "nl.softwarecatalogus.koppeling.vastgelegd.v1"), 7),
        what="the koppelingen projected",
    )


async def test_a_hostile_ameff_upload_is_refused_and_publishes_nothing(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE model [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>'
        b'<model xmlns="http://www.opengroup.org/xsd/archimate/3.0/"><name>&b;</name></model>'
    )
    result = await upload_ameff(client, auth, bomb)

    assert result["status"] == "failed" and "DTD" in result["error"]
    assert result["counts"]["published"] == 0
