"""Issue 5's round trip: an organisation's landscape exported as AMEFF (valid against the Open
Group XSD) or CSV imports into another organisation as the same landscape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree

from hub.settings import ConnectorSettings, Settings
from tests.support.ameff import archimate_schema
from tests.support.hub_api import eventually, landscape_event, publish, run_import

pytestmark = pytest.mark.e2e

APPS = [
    {"id": "app-zaak", "naam": "Zaaksysteem", "referentiecomponenten": ["rc-zrc"]},
    {"id": "app-dms", "naam": "DMS"},
]
USES = [
    {"id": "g-1", "afnemer": "org-1", "applicatie": "app-zaak", "status": "In productie", "versie": "2.1"},
    {"id": "g-2", "afnemer": "org-1", "applicatie": "app-dms", "status": "Gepland"},
]
LINK = {"id": "k-1", "applicatieA": "app-zaak", "applicatieB": "app-dms", "type": "api", "richting": "AnaarB",
        "organisatie": "org-1"}  # fmt: skip


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"connectors": ConnectorSettings(poll_seconds=0.2)})


async def _landschap(client: httpx.AsyncClient, auth: dict[str, str], org: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def complete() -> bool:
        nonlocal found
        response = await client.get(f"/api/v1/organisaties/{org}/landschap", headers=auth)
        found = response.json()
        return response.status_code == 200 and len(found["gebruik"]) == 2 and len(found["koppelingen"]) == 1

    await eventually(complete, what=f"the landscape of {org}")
    return found


def _usage(landschap: dict[str, Any]) -> list[tuple[Any, ...]]:
    return sorted((g["gebruik"]["applicatie"], g["gebruik"]["status"], g["applicatie"]["naam"])
                  for g in landschap["gebruik"])  # fmt: skip


def _links(landschap: dict[str, Any]) -> list[tuple[Any, ...]]:
    return sorted(
        (k["applicatieA"], k["applicatieB"], k["type"], k["richting"]) for k in landschap["koppelingen"]
    )


async def test_an_exported_landscape_validates_and_imports_into_another_organisation(
    client: httpx.AsyncClient, auth: dict[str, str], tmp_path: Path
) -> None:
    events = [
        landscape_event(
            "organisatie", "vastgelegd", {"id": "org-1", "naam": "Gemeente Een", "type": "Gemeente"}
        ),
        landscape_event(
            "referentiecomponent", "vastgelegd", {"id": "rc-zrc", "naam": "Zaakregistratiecomponent"}
        ),
        *(landscape_event("applicatie", "vastgelegd", app) for app in APPS),
        *(landscape_event("gebruik", "vastgelegd", use) for use in USES),
        landscape_event("koppeling", "vastgelegd", LINK),
    ]
    assert (await publish(client, auth, *events)).status_code == 202
    original = await _landschap(client, auth, "org-1")

    ameff = await client.get("/api/v1/organisaties/org-1/landschap", params={"format": "ameff"}, headers=auth)
    assert ameff.status_code == 200 and ameff.headers["content-type"].startswith("application/xml")
    schema = archimate_schema()
    assert schema.validate(etree.fromstring(ameff.content)), schema.error_log

    imported = await run_import(
        client, auth, ameff.content, "landschap.xml", objecttype="ameff", organisatie="org-2"
    )
    assert imported["status"] == "done", imported
    copy = await _landschap(client, auth, "org-2")
    assert _usage(copy) == _usage(original)
    assert _links(copy) == _links(original)
    assert {k["organisatie"] for k in copy["koppelingen"]} == {"org-2"}

    table = await client.get("/api/v1/organisaties/org-1/landschap", params={"format": "csv"}, headers=auth)
    assert table.status_code == 200 and table.headers["content-type"].startswith("text/csv")
    # Gebruik ids are global, so a CSV goes back into its own organisation (another one is
    # refused row by row: its afnemer column names org-1) and changes nothing there.
    elsewhere = await run_import(
        client, auth, table.content, "g.csv", objecttype="gebruik", organisatie="org-3"
    )
    assert elsewhere["counts"]["invalid"] == 2 and elsewhere["counts"]["published"] == 0, elsewhere
    back = await run_import(client, auth, table.content, "g.csv", objecttype="gebruik", organisatie="org-1")
    assert back["status"] == "done" and back["counts"]["invalid"] == 0 and back["counts"]["read"] == 2, back
    assert _usage(await _landschap(client, auth, "org-1")) == _usage(original)

    workbook = await client.get(
        "/api/v1/organisaties/org-1/landschap", params={"format": "xlsx"}, headers=auth
    )
    assert workbook.status_code == 200 and workbook.content[:2] == b"PK"  # a zip: an xlsx workbook
    unknown = await client.get("/api/v1/organisaties/org-1/landschap", params={"format": "pdf"}, headers=auth)
    assert unknown.status_code == 400 and unknown.json()["errors"][0]["field"] == "format"
