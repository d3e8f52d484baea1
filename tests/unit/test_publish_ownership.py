"""Who may record what through publish (issue 12, "Anyone overwrites anyone"): a publisher
records objects of its own organisation only, as the event states them and as the hub holds
them; a systeem only for its sources; nobody states another organisatie. Checked against the
in-memory landscape twin (same contract suite as PostgreSQL)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from hub.adapters.memory import InMemoryProjectionStore
from hub.api.ownership import check_publish
from hub.api.problems import ProblemError
from hub.ports import LoggedEvent
from hub.services.access import Principal, Role
from hub.services.projection import apply_events
from schemas import CloudEvent, validate_event

GEM_A, GEM_B = "gem-a", "gem-b"
SOURCE = "urn:nld:gem-b:zaaksysteem"


def landscape(objecttype: str, verb: str, data: dict[str, Any], **extra: Any) -> CloudEvent:
    return validate_event({
        "specversion": "1.0", "id": str(uuid.uuid4()), "source": extra.pop("source", SOURCE),
        "type": f"nl.softwarecatalogus.{objecttype}.{verb}.v1", "subject": data["id"], "data": data, **extra,
    })  # fmt: skip


def gebruik(afnemer: str, **more: Any) -> dict[str, Any]:
    return {"id": "g-a1", "afnemer": afnemer, "applicatie": "app", "status": "In productie"} | more


async def store_with_gem_a() -> InMemoryProjectionStore:
    store = InMemoryProjectionStore()
    owned = [
        landscape("gebruik", "vastgelegd", gebruik(GEM_A, versie="2.0", interneAantekening="x")),
        landscape("organisatie", "vastgelegd", {"id": GEM_A, "naam": "Gemeente A", "type": "Gemeente"}),
    ]
    await apply_events(store, [LoggedEvent(e, 0, n) for n, e in enumerate(owned)], None)
    return store


GB_B = Principal("gem-b beheerder", Role.GEBRUIK_BEHEERDER, GEM_B)


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (landscape("gebruik", "vastgelegd", gebruik(GEM_B)), "data"),  # takes over gem-a's gebruik
        (landscape("gebruik", "vastgelegd", {**gebruik(GEM_A), "id": "new"}), "data"),  # for gem-a
        (landscape("gebruik", "ingetrokken", {"id": "g-a1"}), "data"),
        (landscape("organisatie", "ingetrokken", {"id": GEM_A}), "data"),
        (landscape("referentiecomponent", "vastgelegd", {"id": "rc", "naam": "Zaken"}), "data"),
        (landscape("gebruik", "vastgelegd", gebruik(GEM_B, id="g-b"), organisatie=GEM_A), "organisatie"),
    ],
)
async def test_a_gebruik_beheerder_may_not_record_or_withdraw_another_organisations_objects(
    event: CloudEvent, field: str
) -> None:
    store = await store_with_gem_a()
    with pytest.raises(ProblemError) as refused:
        await check_publish(GB_B, [event], store)
    assert refused.value.status == 403
    [error] = refused.value.extra["errors"]
    assert error["field"] == field and error["index"] == 0


async def test_a_gebruik_beheerder_records_and_withdraws_its_own() -> None:
    store = await store_with_gem_a()
    own = [
        landscape("gebruik", "vastgelegd", {**gebruik(GEM_B), "id": "g-b"}, organisatie=GEM_B),
        landscape("gebruik", "ingetrokken", {"id": "g-b"}),
        landscape("organisatie", "vastgelegd", {"id": GEM_B, "naam": "Gemeente B", "type": "Gemeente"}),
        validate_event({"specversion": "1.0", "id": "1", "source": SOURCE, "type": "nl.x.y.v1"}),
    ]
    await check_publish(GB_B, own, store)


async def test_the_admin_records_anything() -> None:
    store = await store_with_gem_a()
    await check_publish(Principal("admin"), [landscape("gebruik", "vastgelegd", gebruik(GEM_B))], store)


async def test_a_systeem_publishes_only_for_its_registered_source_and_the_403_names_it() -> None:
    store = await store_with_gem_a()
    systeem = Principal("zaaksysteem", Role.SYSTEEM, GEM_B, sources=(SOURCE,))
    await check_publish(systeem, [landscape("gebruik", "vastgelegd", {**gebruik(GEM_B), "id": "g-b"})], store)
    other = "urn:nld:gem-a:zaaksysteem"
    with pytest.raises(ProblemError) as refused:
        posing = landscape("gebruik", "vastgelegd", gebruik(GEM_B), source=other)
        await check_publish(systeem, [posing], store)
    assert refused.value.status == 403 and other in str(refused.value.detail)


HUB = "urn:nld:oin:00000000000000000000:systeem:koppelhub"


@pytest.mark.parametrize(
    "source", [HUB, f"{HUB}:connector:0b7f6c1e-3d2a-4c55-9e61-7a1f0c2d9b34", f"{HUB}:import:{GEM_B}"]
)
@pytest.mark.parametrize("principal", [GB_B, Principal("admin")])
async def test_nobody_publishes_under_the_hubs_own_source(source: str, principal: Principal) -> None:
    posing = landscape("gebruik", "vastgelegd", gebruik(GEM_B, id="g-b"), source=source)
    another = landscape("gebruik", "vastgelegd", gebruik(GEM_B, id="g-b"), source=HUB + "-x")

    with pytest.raises(ProblemError) as refused:
        await check_publish(principal, [posing], InMemoryProjectionStore(), HUB)
    await check_publish(principal, [another], InMemoryProjectionStore(), HUB)  # only starts alike

    assert refused.value.status == 403
    [error] = refused.value.extra["errors"]
    assert error["field"] == "source" and "KOPPELHUB_SOURCE_URN" in str(error["message"])
