"""The landscape read API's contract on the in-memory app: errors, private fields, documentation.

Paging through what the projector wrote is in tests/e2e/test_landscape_api.py.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from hub.api.auth import Principal
from hub.api.landscape import item_json
from hub.ports import Provenance, StoredObject
from hub.services.access import Role
from tests.support.hub_api import landscape_event
from tests.support.memory_app import MemoryApp


async def test_read_errors_are_problems_that_say_what_is_wrong(
    memory: MemoryApp, auth: dict[str, str]
) -> None:
    client = memory.client
    missing = await client.get("/api/v1/gebruik/nope", headers=auth)
    unknown = await client.get("/api/v1/gebruik?kleur=blauw", headers=auth)
    forged = await client.get("/api/v1/gebruik?cursor=bm9wZQ", headers=auth)
    too_many = await client.get("/api/v1/gebruik?limit=100000", headers=auth)
    nobody = await client.get("/api/v1/organisaties/nope/landschap", headers=auth)
    anonymous = await client.get("/api/v1/gebruik")

    assert missing.status_code == 404 and "nope" in missing.json()["detail"]
    assert unknown.status_code == 400 and "kleur" in unknown.json()["detail"]
    assert "afnemer" in unknown.json()["detail"]  # the filters on offer
    assert forged.status_code == 400
    assert too_many.status_code == 400 and too_many.json()["errors"][0]["field"] == "limit"
    assert nobody.status_code == 404
    assert anonymous.status_code == 401
    for response in (missing, unknown, forged, too_many, nobody, anonymous):
        assert response.headers["content-type"] == "application/problem+json"


async def test_outside_publishers_cannot_send_the_hubs_own_event_types(
    memory: MemoryApp, auth: dict[str, str]
) -> None:
    client = memory.client
    derived = landscape_event("gebruik", "gewijzigd", {"id": "use-1"})
    alert = {**landscape_event("gebruik", "vastgelegd", {"id": "x"}), "type": "nl.koppelhub.delivery.dead.v1"}

    response = await client.post(
        "/api/v1/events",
        content=json.dumps([derived, alert]),
        headers={**auth, "content-type": "application/cloudevents-batch+json"},
    )

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [(e["index"], e["field"]) for e in errors] == [(0, "type"), (1, "type")]
    assert "nl.softwarecatalogus.gebruik.vastgelegd.v1" in errors[0]["message"]


async def test_openapi_documents_each_collection_with_its_filters_and_examples(
    api_client: httpx.AsyncClient,
) -> None:
    client = api_client
    spec = (await client.get("/openapi.json")).json()

    gebruik = spec["paths"]["/api/v1/gebruik"]["get"]
    assert {p["name"] for p in gebruik["parameters"]} >= {
        "afnemer",
        "applicatie",
        "status",
        "limit",
        "cursor",
    }
    for name in ("OrganisatieItem", "ApplicatieItem", "GebruikItem", "KoppelingItem", "LandschapOut"):
        assert name in spec["components"]["schemas"]
    schemas = spec["components"]["schemas"]
    landscape_models = [
        n for n in schemas if n.endswith(("Item", "Page")) or n.startswith(("Landschap", "Gebruik"))
    ]
    assert len(landscape_models) >= 14
    for name in [*landscape_models, "ProvenanceOut"]:
        assert schemas[name].get("examples"), f"{name} has no example"
    assert "provenance" in schemas["GebruikItem"]["examples"][0]
    assert "/api/v1/organisaties/{organisatie_id}/landschap" in spec["paths"]


def _gebruik(afnemer: str) -> StoredObject:
    state: dict[str, Any] = {"id": "g", "afnemer": afnemer, "applicatie": "a", "status": "Gepland"}
    state |= {"interneAantekening": "note", "versie": None, "referentiecomponenten": []}
    return StoredObject("gebruik", "g", state, Provenance("urn:x", "e", None, None, 1))


def test_private_fields_are_shown_to_their_owner_and_the_admin_only() -> None:
    admin = Principal("admin", organisation=None)
    owner = Principal("gemeente", Role.GEBRUIK_BEHEERDER, organisation="org-1")
    other = Principal("leverancier", Role.AANBOD_BEHEERDER, organisation="org-2")

    assert item_json(_gebruik("org-1"), admin)["interneAantekening"] == "note"
    assert item_json(_gebruik("org-1"), owner)["interneAantekening"] == "note"
    assert "interneAantekening" not in item_json(_gebruik("org-1"), other)
