"""Mistakes at publish that used to get a silent 202 (issue 11): an unknown type in the
landscape's namespace is refused, an unpadded sequence is accepted with a visible warning."""

from __future__ import annotations

import json

import httpx
import pytest

from hub.adapters.prometheus import PrometheusMetrics
from tests.support.hub_api import event, landscape_event, publish
from tests.support.memory_app import ADMIN_TOKEN, MemoryApp

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ORG = {"id": "org-1", "naam": "Gemeente Voorbeeldstad", "type": "Gemeente", "oin": "00000001001234567000"}


@pytest.mark.parametrize(
    ("event_type", "hint"),
    [
        ("nl.softwarecatalogus.applicaties.vastgelegd.v1", "did you mean 'applicatie'?"),
        ("nl.softwarecatalogus.organisatie.vastgelegd.v2", "the only version is v1"),
        ("nl.softwarecatalogus.leverancier.vastgelegd.v1", "'leverancier' is not a landscape object type"),
        ("nl.softwarecatalogus.organisatie.bijgewerkt.v1", "'bijgewerkt' is not a landscape event verb"),
    ],
)
async def test_an_unknown_type_in_the_landscape_namespace_is_refused_naming_the_types(
    client: httpx.AsyncClient, memory: MemoryApp, event_type: str, hint: str
) -> None:
    response = await publish(client, AUTH, event(ORG["id"], type=event_type, data=ORG))

    assert response.status_code == 400, response.text
    body = response.json()
    assert body["title"] == "Event type not accepted"
    [problem] = body["errors"]
    assert (problem["index"], problem["field"]) == (0, "type")
    assert hint in problem["message"]
    assert "nl.softwarecatalogus.organisatie.vastgelegd.v1" in problem["message"]
    assert memory.published() == []


async def test_types_outside_the_landscape_namespace_still_pass_through(client: httpx.AsyncClient) -> None:
    response = await publish(client, AUTH, event(type="nl.softwarecatalogusx.iets.v1"))

    assert response.status_code == 202, response.text


async def test_the_hubs_own_types_are_refused_under_a_title_that_says_so(client: httpx.AsyncClient) -> None:
    response = await publish(client, AUTH, event(type="nl.koppelhub.delivery.dead.v1"))

    assert response.status_code == 400
    assert response.json()["title"] == "Event type not accepted"


async def test_an_unpadded_numeric_sequence_is_accepted_with_a_warning_and_counted(
    client: httpx.AsyncClient, memory: MemoryApp
) -> None:
    ctx = memory.app.state.ctx
    ctx.metrics = PrometheusMetrics()
    unpadded = landscape_event("organisatie", "vastgelegd", ORG, sequence="10")
    padded = landscape_event("organisatie", "vastgelegd", ORG, sequence="00000000000000000011")

    response = await publish(client, AUTH, padded, unpadded)

    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == [padded["id"], unpadded["id"]]
    [warning] = body["warnings"]
    assert (warning["index"], warning["kind"], warning["field"]) == (1, "sequence-not-padded", "sequence")
    assert "'00000000000000000010'" in warning["message"]
    assert b'koppelhub_publish_warnings_total{kind="sequence-not-padded"} 1.0' in ctx.metrics.exposition()[0]
    assert len(memory.published()) == 2


@pytest.mark.parametrize("sequence", ["0010", "00000000000000000010", "b-10", "2026-11-29T10:00:00Z"])
async def test_a_padded_or_non_numeric_sequence_gets_no_warning(
    client: httpx.AsyncClient, sequence: str
) -> None:
    padded = landscape_event("organisatie", "vastgelegd", ORG, sequence=sequence)
    response = await publish(client, AUTH, padded)

    assert response.status_code == 202, response.text
    assert "warnings" not in response.json()


@pytest.mark.parametrize("time", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
async def test_a_time_out_of_range_in_utc_is_a_400_in_every_mode(
    client: httpx.AsyncClient, time: str
) -> None:
    """Valid RFC 3339 whose UTC moment falls outside years 1-9999 (it was a 500)."""
    structured = event("key-1", time=time)
    single = await client.post(
        "/api/v1/events",
        content=json.dumps(structured),
        headers={**AUTH, "content-type": "application/cloudevents+json"},
    )
    batch = await publish(client, AUTH, event("key-2"), structured)
    binary_headers = {k: v for k, v in structured.items() if k not in ("data", "datacontenttype")}
    binary = await client.post(
        "/api/v1/events",
        content=b"{}",
        headers={
            **AUTH,
            "content-type": "application/json",
            **{f"ce-{k}": str(v) for k, v in binary_headers.items()},
        },
    )

    for response in (single, batch, binary):
        assert response.status_code == 400, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert any(p["field"] == "time" and "out of range" in p["message"] for p in response.json()["errors"])
