"""Who may record what through publish (issue 12, "Anyone overwrites anyone"): a publisher
records objects of its own organisation only, as the event states them and as the hub holds
them; a systeem only for its sources; nobody states another organisatie. Checked against the
in-memory landscape twin (same contract suite as PostgreSQL)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from hub.adapters.memory import InMemoryProjectionStore, InMemoryTokenStore
from hub.api.ownership import check_publish
from hub.api.problems import ProblemError
from hub.ports import LoggedEvent
from hub.services.access import Principal, Role
from hub.services.projection import apply_events
from hub.services.tokens import TokenRefused, TokenService
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


async def test_a_source_registered_to_another_organisations_systeem_is_that_organisations() -> None:
    """Else gem-a's beheerder could take the source and the next id of gem-b's zaaksysteem,
    and the projector's dedupe would drop the real event as already seen."""
    tokens = TokenService(InMemoryTokenStore(), landscape=None)
    admin = Principal("admin")
    await tokens.create(admin, name="zaaksysteem", role="systeem", organisatie=GEM_B, sources=[SOURCE])
    revoked, _ = await tokens.create(
        admin, name="oud", role="systeem", organisatie=GEM_B, sources=["urn:nld:gem-b:oud"]
    )
    await tokens.revoke(admin, revoked.id)
    registered = TokenService(tokens.store, landscape=None).source_owners
    assert [(o.prefix, o.organisatie) for o in (await registered()).owners] == [(SOURCE, GEM_B)]

    gb_a = Principal("gem-a beheerder", Role.GEBRUIK_BEHEERDER, GEM_A)
    store = await store_with_gem_a()
    for source in (SOURCE, SOURCE + ":sub"):
        posing = landscape("gebruik", "vastgelegd", {**gebruik(GEM_A), "id": "g-a2"}, source=source)
        with pytest.raises(ProblemError) as refused:
            await check_publish(gb_a, [posing], store, "", registered)
        [error] = refused.value.extra["errors"]
        assert error["field"] == "source" and GEM_B in str(error["message"])
    for source in (SOURCE + "x", "urn:nld:gem-b:oud", "urn:nld:gem-a:cmdb"):  # not registered (any more)
        await check_publish(
            gb_a, [landscape("gebruik", "vastgelegd", gebruik(GEM_A), source=source)], store, "", registered
        )
    # Its own organisation's principals and the hub-wide ones may.
    await check_publish(
        GB_B, [landscape("gebruik", "vastgelegd", gebruik(GEM_B, id="g-b"))], store, "", registered
    )
    await check_publish(admin, [landscape("gebruik", "vastgelegd", gebruik(GEM_B))], store, "", registered)


async def test_a_systeem_token_may_not_register_another_organisations_source() -> None:
    tokens, admin = TokenService(InMemoryTokenStore(), landscape=None), Principal("admin")
    await tokens.create(admin, name="zaaksysteem", role="systeem", organisatie=GEM_B, sources=[SOURCE])
    for overlapping in (SOURCE, SOURCE + ":sub", "urn:nld:gem-b"):
        with pytest.raises(TokenRefused) as refused:
            await tokens.create(admin, name="x", role="systeem", organisatie=GEM_A, sources=[overlapping])
        assert refused.value.status == 400 and GEM_B in str(refused.value)
    await tokens.create(admin, name="ook", role="systeem", organisatie=GEM_B, sources=[SOURCE + ":sub"])
    await tokens.create(admin, name="eigen", role="systeem", organisatie=GEM_A, sources=["urn:nld:gem-a"])


OIN_A, OIN_B = "00000001001234567000", "00000001009876543000"


async def store_with_numbered_organisaties() -> InMemoryProjectionStore:
    """gem-a and gem-b with their OIN; gem-b with a KvK number too."""
    store = await store_with_gem_a()
    organisaties = [
        {"id": GEM_A, "naam": "Gemeente A", "type": "Gemeente", "oin": OIN_A},
        {"id": GEM_B, "naam": "Gemeente B", "type": "Gemeente", "oin": OIN_B, "kvkNummer": "12345678"},
    ]
    events = [landscape("organisatie", "vastgelegd", data, source="urn:nld:beheer") for data in organisaties]
    await apply_events(store, [LoggedEvent(e, 0, 10 + n) for n, e in enumerate(events)], None)
    return store


async def test_a_source_naming_another_organisations_oin_or_kvk_number_is_that_organisations() -> None:
    """The NL GOV profile names a source after its organisation (urn:nld:oin:<OIN>:systeem:…):
    such a source is the organisation's before any systeem token registers it, or gem-a's
    beheerder could take the source and next ids of gem-b's systems; written another way (a URN
    is case-insensitive, %30 is 0, a ?= or # part is no part of it) too."""
    store = await store_with_numbered_organisaties()
    owners = TokenService(InMemoryTokenStore(), landscape=store).source_owners
    gb_a = Principal("gem-a beheerder", Role.GEBRUIK_BEHEERDER, GEM_A)
    taken = (
        f"urn:nld:oin:{OIN_B}:systeem:zaken", f"urn:nld:oin:{OIN_B}", "urn:nld:kvknr:12345678:crm",
        f"URN:NLD:OIN:{OIN_B}:systeem:zaken", f"urn:nld:oin:%30{OIN_B[1:]}:x", f"urn:nld:oin:{OIN_B}?=x",
        f"urn:nld:oin:{OIN_B}#x", "URN:NLD:KVKNR:12345678",
    )  # fmt: skip
    for source in taken:
        posing = landscape("gebruik", "vastgelegd", {**gebruik(GEM_A), "id": "g-a2"}, source=source)
        with pytest.raises(ProblemError) as refused:
            await check_publish(gb_a, [posing], store, "", owners)
        [error] = refused.value.extra["errors"]
        assert error["field"] == "source" and GEM_B in str(error["message"]), (source, error)
        assert "OIN" in str(error["message"]) or "KvK" in str(error["message"])
    # Its own number, a number nobody has, and another number that merely starts the same way.
    for source in (
        f"urn:nld:oin:{OIN_A}:systeem:cmdb",
        "urn:nld:oin:00000001000000000001:x",
        f"urn:nld:oin:{OIN_B}9",
    ):
        await check_publish(
            gb_a, [landscape("gebruik", "vastgelegd", gebruik(GEM_A), source=source)], store, "", owners
        )
    gb_b = Principal("gem-b beheerder", Role.GEBRUIK_BEHEERDER, GEM_B)
    own = landscape(
        "gebruik", "vastgelegd", gebruik(GEM_B, id="g-b"), source=f"urn:nld:oin:{OIN_B}:systeem:z"
    )
    await check_publish(gb_b, [own], store, "", owners)
    await check_publish(Principal("admin"), [own], store, "", owners)


async def test_an_organisatie_may_not_give_another_organisations_number() -> None:
    """Else gem-a could give gem-b's OIN as its own and publish under gem-b's sources."""
    store = await store_with_numbered_organisaties()
    owners = TokenService(InMemoryTokenStore(), landscape=store).source_owners
    ob_a = Principal("gem-a beheerder", Role.GEBRUIK_BEHEERDER, GEM_A)
    for numbers in ({"oin": OIN_B}, {"kvkNummer": "12345678"}):
        squat = landscape(
            "organisatie",
            "vastgelegd",
            {"id": GEM_A, "naam": "A", "type": "Gemeente", **numbers},
            source="urn:a",
        )
        with pytest.raises(ProblemError) as refused:
            await check_publish(ob_a, [squat], store, "", owners)
        [error] = refused.value.extra["errors"]
        assert error["field"] == "data" and GEM_B in str(error["message"]), error
    own = landscape("organisatie", "vastgelegd", {"id": GEM_A, "naam": "A", "type": "Gemeente", "oin": OIN_A})
    await check_publish(ob_a, [own], store, "", owners)


async def test_a_number_two_organisaties_give_is_neithers() -> None:
    """Data that got in another way (a hub-wide import) gives two organisaties one OIN: both are
    refused under it until it is corrected, so giving a number never takes its sources."""
    store = await store_with_numbered_organisaties()
    squat = landscape(
        "organisatie", "vastgelegd", {"id": GEM_A, "naam": "A", "type": "Gemeente", "oin": OIN_B}
    )
    await apply_events(store, [LoggedEvent(squat, 0, 20)], None)
    owners = TokenService(InMemoryTokenStore(), landscape=store).source_owners
    for organisatie, other in ((GEM_A, GEM_B), (GEM_B, GEM_A)):
        principal = Principal(f"{organisatie} beheerder", Role.GEBRUIK_BEHEERDER, organisatie)
        event = landscape(
            "gebruik",
            "vastgelegd",
            gebruik(organisatie, id=f"g-{organisatie}"),
            source=f"urn:nld:oin:{OIN_B}:z",
        )
        with pytest.raises(ProblemError) as refused:
            await check_publish(principal, [event], store, "", owners)
        assert other in str(refused.value.extra["errors"][0]["message"])


async def test_a_systeem_is_bound_by_the_numbers_whenever_it_was_registered() -> None:
    """A systeem token registered for a source before an organisatie gave the number it names
    may not keep publishing under it."""
    store = await store_with_gem_a()
    tokens, admin = TokenService(InMemoryTokenStore(), landscape=store), Principal("admin")
    early = f"urn:nld:oin:{OIN_B}:systeem:zaken"
    record, _ = await tokens.create(admin, name="vroeg", role="systeem", organisatie=GEM_A, sources=[early])
    systeem = Principal("vroeg", Role.SYSTEEM, GEM_A, tuple(record.sources))
    event = landscape("gebruik", "vastgelegd", gebruik(GEM_A), source=early)
    await check_publish(systeem, [event], store, "", tokens.source_owners)  # nobody gives OIN_B yet

    numbered = await store_with_numbered_organisaties()
    owners = TokenService(tokens.store, landscape=numbered).source_owners
    with pytest.raises(ProblemError) as refused:
        await check_publish(systeem, [event], numbered, "", owners)
    assert GEM_B in str(refused.value.extra["errors"][0]["message"])


async def test_a_systeem_token_may_not_register_a_source_naming_another_organisations_number() -> None:
    store = await store_with_numbered_organisaties()
    tokens, admin = TokenService(InMemoryTokenStore(), landscape=store), Principal("admin")
    for taken in (
        f"urn:nld:oin:{OIN_B}:systeem:zaken",
        "urn:nld:kvknr:12345678",
        "urn:nld:oin",
        f"URN:NLD:OIN:{OIN_B}",
    ):
        with pytest.raises(TokenRefused) as refused:
            await tokens.create(admin, name="x", role="systeem", organisatie=GEM_A, sources=[taken])
        assert refused.value.status == 400 and GEM_B in str(refused.value), taken
    await tokens.create(
        admin, name="eigen", role="systeem", organisatie=GEM_A, sources=[f"urn:nld:oin:{OIN_A}"]
    )
    await tokens.create(
        admin, name="zaken", role="systeem", organisatie=GEM_B, sources=[f"urn:nld:oin:{OIN_B}:systeem:zaken"]
    )
