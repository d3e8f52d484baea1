"""The AsyncAPI 3.0 document: valid against the official JSON Schema (vendored, see
tests/fixtures/asyncapi/README.md), complete for the catalogue, served at /asyncapi.json,
and the file in schemas/json/ is what the generator writes (the --check in make test)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from hub.adapters.memory import (
    InMemoryDatabase,
    InMemoryEventLog,
    InMemoryProjectionStore,
    InMemorySubscriptionStore,
)
from hub.api.app import create_app
from hub.api.auth import TokenAuthenticator
from hub.api.context import ApiContext
from hub.settings import Settings
from schemas.asyncapi import asyncapi_document
from schemas.generate import JSON_DIR, stale_files
from schemas.hub_events import DELIVERY_DEAD, SUBSCRIPTION_DISABLED
from schemas.landscape import DERIVED_VERBS, INBOUND_VERBS, OBJECT_TYPES
from schemas.landscape.events import event_type
from subscriptions.ssrf import NetworkPolicy

SCHEMA = Path(__file__).parents[1] / "fixtures" / "asyncapi" / "asyncapi-3.0.0.schema.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))


def errors(validator: jsonschema.Draft7Validator, document: dict[str, Any]) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(document)]


def test_the_document_is_valid_asyncapi_3(validator: jsonschema.Draft7Validator) -> None:
    assert errors(validator, asyncapi_document()) == []


def test_the_validator_catches_a_document_that_is_not(validator: jsonschema.Draft7Validator) -> None:
    broken = copy.deepcopy(asyncapi_document())
    broken["operations"]["publishLandscape"]["action"] = "publish"  # AsyncAPI 2 wording
    assert errors(validator, broken)


def test_every_landscape_type_and_alert_has_a_message_with_its_data_schema() -> None:
    doc = asyncapi_document()
    messages = doc["components"]["messages"]
    wanted = {event_type(t, v) for t in OBJECT_TYPES for v in (*INBOUND_VERBS, *DERIVED_VERBS)}
    assert wanted | {DELIVERY_DEAD, SUBSCRIPTION_DISABLED} <= set(messages)
    organisatie = messages["nl.softwarecatalogus.organisatie.vastgelegd.v1"]["payload"]["allOf"][1]
    assert organisatie["properties"]["type"] == {"const": "nl.softwarecatalogus.organisatie.vastgelegd.v1"}
    assert organisatie["properties"]["data"] == {"$ref": "#/components/schemas/Organisatie"}
    assert "Organisatie" in doc["components"]["schemas"] and "CloudEvent" in doc["components"]["schemas"]


def test_the_gebruik_proposal_is_documented_as_a_type_sources_publish() -> None:
    doc = asyncapi_document()
    proposal = "nl.softwarecatalogus.gebruik.voorgesteld.v1"
    data = doc["components"]["messages"][proposal]["payload"]["allOf"][1]["properties"]["data"]
    assert data == {"$ref": "#/components/schemas/GebruikVoorstel"}
    assert doc["components"]["schemas"]["GebruikVoorstel"]["required"] == ["afnemer", "applicatie"]
    assert {"$ref": f"#/channels/events/messages/{proposal}"} in doc["operations"]["publishLandscape"][
        "messages"
    ]


def test_the_checked_in_document_is_current() -> None:
    assert (JSON_DIR / "asyncapi.json").exists()
    assert stale_files() == []


async def _ready() -> dict[str, bool]:
    return {}


async def test_the_api_serves_the_document_without_a_token(tmp_path: Path) -> None:
    db = InMemoryDatabase()
    ctx = ApiContext(
        settings=Settings(data_dir=tmp_path, admin_token="t"),
        event_log=InMemoryEventLog(),
        subscriptions=InMemorySubscriptionStore(db),
        landscape=InMemoryProjectionStore([]),
        network_policy=NetworkPolicy.parse([]),
        auth=TokenAuthenticator("t"),
        readiness=_ready,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(ctx)), base_url="http://hub"
    ) as c:
        response = await c.get("/asyncapi.json")
    assert response.status_code == 200
    assert response.json() == json.loads((JSON_DIR / "asyncapi.json").read_text())
