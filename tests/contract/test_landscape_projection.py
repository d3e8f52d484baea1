"""Projection rules of the landscape, run against the in-memory and the PostgreSQL store."""

from __future__ import annotations

from typing import Any

import pytest

from hub.errors import PermanentError
from schemas import validate_event
from schemas.landscape import OBJECT_TYPES, VOORGESTELD_TYPE
from tests.contract.conftest import HUB, PUBLIC_URL, SOURCE_A, SOURCE_B, Harness, ingetrokken, vastgelegd

ORG = {"id": "org-1", "naam": "Gemeente Voorbeeldstad", "type": "Gemeente"}
APP = {"id": "app-1", "naam": "Open Zaak", "aanbieder": "org-9", "referentiecomponenten": ["rc-2", "rc-1"]}
USE = {
    "id": "use-1",
    "afnemer": "org-1",
    "applicatie": "app-1",
    "status": "Gepland",
    "interneAantekening": "contract tot 2027",
}


def _example(objecttype: str) -> dict[str, Any]:
    schema_extra = OBJECT_TYPES[objecttype].model_config.get("json_schema_extra")
    assert isinstance(schema_extra, dict)
    examples = schema_extra["examples"]
    assert isinstance(examples, list)
    return dict(examples[0])


@pytest.mark.parametrize("objecttype", list(OBJECT_TYPES))
async def test_every_object_type_is_stored_with_all_its_fields(landscape: Harness, objecttype: str) -> None:
    data = _example(objecttype)
    event = vastgelegd(objecttype, data, sequence="00000000000000000007")

    await landscape.apply(event)

    stored = await landscape.reader.get(objecttype, data["id"])
    assert stored is not None
    assert stored.state == OBJECT_TYPES[objecttype].model_validate(data).model_dump(mode="json")
    assert (stored.provenance.source, stored.provenance.event_id) == (SOURCE_A, event.id)
    assert (stored.provenance.time, stored.provenance.sequence) == (event.time, "00000000000000000007")


async def test_a_new_object_is_created_and_announced_once(landscape: Harness) -> None:
    derived = await landscape.apply(vastgelegd("organisatie", ORG))

    assert [e.type for e in derived] == ["nl.softwarecatalogus.organisatie.aangemaakt.v1"]
    announced = derived[0]
    assert (announced.source, announced.subject) == (HUB, "org-1")
    assert announced.dataref == f"{PUBLIC_URL}/api/v1/organisaties/org-1"
    assert announced.data["naam"] == "Gemeente Voorbeeldstad"
    assert validate_event(announced.to_structured()) == announced  # a valid NL GOV CloudEvent


async def test_an_identical_assertion_changes_nothing_and_notifies_nobody(landscape: Harness) -> None:
    first = vastgelegd("applicatie", APP)
    await landscape.apply(first)

    again = await landscape.apply(
        vastgelegd("applicatie", {**APP, "referentiecomponenten": ["rc-1", "rc-2"]})
    )

    assert again == []
    stored = await landscape.reader.get("applicatie", "app-1")
    assert stored is not None and stored.provenance.event_id == first.id  # still the event that made it


async def test_a_change_is_announced_with_the_changed_fields_old_and_new(landscape: Harness) -> None:
    await landscape.apply(vastgelegd("gebruik", USE))

    derived = await landscape.apply(vastgelegd("gebruik", {**USE, "status": "In productie"}))

    assert [e.type for e in derived] == ["nl.softwarecatalogus.gebruik.gewijzigd.v1"]
    assert derived[0].data["wijzigingen"] == [{"field": "status", "old": "Gepland", "new": "In productie"}]
    assert derived[0].data["status"] == "In productie"
    stored = await landscape.reader.get("gebruik", "use-1")
    assert stored is not None and stored.state["status"] == "In productie"


async def test_private_fields_never_appear_in_a_derived_event(landscape: Harness) -> None:
    created = await landscape.apply(vastgelegd("gebruik", USE))
    changed = await landscape.apply(
        vastgelegd("gebruik", {**USE, "status": "In productie", "interneAantekening": "x"})
    )
    deleted = await landscape.apply(ingetrokken("gebruik", "use-1"))

    for event in [*created, *changed, *deleted]:
        assert "interneAantekening" not in event.data
        assert "interneAantekening" not in str(event.to_structured())
    assert [c["field"] for c in changed[0].data["wijzigingen"]] == ["status"]


async def test_a_change_of_private_fields_only_is_stored_but_not_announced(landscape: Harness) -> None:
    await landscape.apply(vastgelegd("gebruik", USE))

    derived = await landscape.apply(vastgelegd("gebruik", {**USE, "interneAantekening": "verlengd tot 2028"}))

    assert derived == []
    stored = await landscape.reader.get("gebruik", "use-1")
    assert stored is not None and stored.state["interneAantekening"] == "verlengd tot 2028"


async def test_a_change_of_private_fields_only_keeps_the_provenance_everyone_reads(
    landscape: Harness,
) -> None:
    first = vastgelegd("gebruik", USE, sequence="0001")
    await landscape.apply(first)

    await landscape.apply(vastgelegd("gebruik", {**USE, "interneAantekening": "verlengd"}, sequence="0002"))

    noted = await landscape.reader.get("gebruik", "use-1")
    assert noted is not None and noted.state["interneAantekening"] == "verlengd"
    # Every reader sees the provenance: a new event id, time or sequence would tell another
    # organisation that this one changed its private note.
    assert (noted.provenance.event_id, noted.provenance.sequence) == (first.id, "0001")
    public = vastgelegd(
        "gebruik", {**USE, "interneAantekening": "verlengd", "status": "In productie"}, sequence="0003"
    )
    await landscape.apply(public)
    changed = await landscape.reader.get("gebruik", "use-1")
    assert changed is not None and (changed.provenance.event_id, changed.provenance.sequence) == (
        public.id,
        "0003",
    )


async def test_an_older_sequence_from_the_same_source_is_stale(landscape: Harness) -> None:
    await landscape.apply(vastgelegd("gebruik", {**USE, "status": "In productie"}, sequence="0002"))

    derived = await landscape.apply(vastgelegd("gebruik", USE, sequence="0001"))

    assert derived == []
    stored = await landscape.reader.get("gebruik", "use-1")
    assert stored is not None and stored.state["status"] == "In productie"


async def test_without_a_sequence_an_older_time_is_stale(landscape: Harness) -> None:
    await landscape.apply(
        vastgelegd("gebruik", {**USE, "status": "In productie"}, time="2026-11-22T12:00:00Z")
    )

    derived = await landscape.apply(vastgelegd("gebruik", USE, time="2026-11-22T11:59:59+00:00"))

    assert derived == []
    stored = await landscape.reader.get("gebruik", "use-1")
    assert stored is not None and stored.state["status"] == "In productie"


async def test_staleness_is_judged_per_source(landscape: Harness) -> None:
    await landscape.apply(vastgelegd("gebruik", USE, sequence="0009", source=SOURCE_A))

    derived = await landscape.apply(
        vastgelegd("gebruik", {**USE, "status": "In productie"}, sequence="0001", source=SOURCE_B)
    )

    assert [e.type for e in derived] == ["nl.softwarecatalogus.gebruik.gewijzigd.v1"]


async def test_ingetrokken_deletes_and_announces_the_last_state(landscape: Harness) -> None:
    await landscape.apply(vastgelegd("gebruik", USE))

    derived = await landscape.apply(ingetrokken("gebruik", "use-1"))

    assert [e.type for e in derived] == ["nl.softwarecatalogus.gebruik.verwijderd.v1"]
    assert derived[0].data["status"] == "Gepland" and derived[0].subject == "use-1"
    assert await landscape.reader.get("gebruik", "use-1") is None


async def test_ingetrokken_of_an_unknown_object_changes_nothing(landscape: Harness) -> None:
    assert await landscape.apply(ingetrokken("gebruik", "never-seen")) == []


async def test_a_late_older_assertion_does_not_bring_a_deleted_object_back(landscape: Harness) -> None:
    await landscape.apply(vastgelegd("gebruik", USE, sequence="0001"))
    await landscape.apply(ingetrokken("gebruik", "use-1", sequence="0003"))

    assert await landscape.apply(vastgelegd("gebruik", USE, sequence="0002")) == []
    assert await landscape.reader.get("gebruik", "use-1") is None
    again = await landscape.apply(vastgelegd("gebruik", USE, sequence="0004"))
    assert [e.type for e in again] == ["nl.softwarecatalogus.gebruik.aangemaakt.v1"]


async def test_a_dangling_reference_is_kept_and_resolves_when_its_target_arrives(landscape: Harness) -> None:
    await landscape.apply(vastgelegd("gebruik", USE))  # neither org-1 nor app-1 exists yet

    early = await landscape.reader.landschap("org-1")
    assert early.organisatie is None
    assert [(g.id, a) for g, a in early.gebruik] == [("use-1", None)]

    await landscape.apply(vastgelegd("applicatie", APP), vastgelegd("organisatie", ORG))
    resolved = await landscape.reader.landschap("org-1")
    assert resolved.organisatie is not None and resolved.organisatie.id == "org-1"
    assert [(g.id, a.id if a else None) for g, a in resolved.gebruik] == [("use-1", "app-1")]


async def test_withdrawing_a_referenced_object_leaves_the_reference_dangling(landscape: Harness) -> None:
    await landscape.apply(vastgelegd("applicatie", APP), vastgelegd("gebruik", USE))

    derived = await landscape.apply(ingetrokken("applicatie", "app-1"))

    assert [e.type for e in derived] == ["nl.softwarecatalogus.applicatie.verwijderd.v1"]  # no cascade
    gebruik = await landscape.reader.get("gebruik", "use-1")
    assert gebruik is not None and gebruik.state["applicatie"] == "app-1"
    assert [(g.id, a) for g, a in (await landscape.reader.landschap("org-1")).gebruik] == [("use-1", None)]


async def test_events_for_one_object_in_one_batch_apply_in_order(landscape: Harness) -> None:
    derived = await landscape.apply(
        vastgelegd("gebruik", USE),
        vastgelegd("gebruik", {**USE, "status": "In productie"}),
        ingetrokken("gebruik", "use-1"),
        vastgelegd("gebruik", {**USE, "status": "Uitgefaseerd"}),
    )

    assert [e.type.split(".")[3] for e in derived] == ["aangemaakt", "gewijzigd", "verwijderd", "aangemaakt"]
    stored = await landscape.reader.get("gebruik", "use-1")
    assert stored is not None and stored.state["status"] == "Uitgefaseerd"


async def test_a_duplicate_event_is_applied_once(landscape: Harness) -> None:
    event = vastgelegd("organisatie", ORG)
    assert len(await landscape.apply(event)) == 1
    assert await landscape.apply(event) == []


async def test_derived_events_are_archived_after_their_cause_and_fanned_out(landscape: Harness) -> None:
    cause = vastgelegd("organisatie", ORG)
    await landscape.apply(cause)

    archive = await landscape.archived()
    seq_of = {e.id: seq for seq, e in archive}
    derived = [e for _, e in archive if e.source == HUB]
    assert len(derived) == 1 and seq_of[derived[0].id] > seq_of[cause.id]
    # The subscription filters on the nl.softwarecatalogus. prefix: both get a delivery.
    assert await landscape.delivered() == [
        (landscape.subscription_id, seq_of[cause.id]),
        (landscape.subscription_id, seq_of[derived[0].id]),
    ]


async def test_invalid_landscape_data_from_the_log_is_refused_and_stores_nothing(landscape: Harness) -> None:
    good = vastgelegd("organisatie", ORG)
    bad = vastgelegd("organisatie", {**ORG, "id": "org-2"}).model_copy(update={"data": {"id": "org-2"}})

    with pytest.raises(PermanentError, match=r"data\.naam"):
        await landscape.apply(good, bad)

    assert await landscape.reader.get("organisatie", "org-1") is None  # the batch rolled back
    assert await landscape.archived() == []


async def test_other_event_types_pass_through_the_projection_untouched(landscape: Harness) -> None:
    other = vastgelegd("organisatie", ORG).model_copy(update={"type": "nl.signalen.melding.aangemaakt.v1"})

    assert await landscape.apply(other) == []
    assert [e.id for _, e in await landscape.archived()] == [other.id]
    assert await landscape.reader.get("organisatie", "org-1") is None


async def test_rebuild_reproduces_the_same_state_and_sends_nothing_again(landscape: Harness) -> None:
    await landscape.apply(vastgelegd("organisatie", ORG), vastgelegd("applicatie", APP))
    await landscape.apply(vastgelegd("gebruik", USE, sequence="0001"))
    await landscape.apply(vastgelegd("gebruik", {**USE, "status": "In productie"}, sequence="0003"))
    await landscape.apply(vastgelegd("gebruik", USE, sequence="0002"))  # stale
    await landscape.apply(
        vastgelegd("applicatie", {**APP, "id": "app-2"}), ingetrokken("applicatie", "app-2")
    )
    await landscape.apply(vastgelegd("organisatie", {**ORG, "naam": "Gemeente Nieuwstad"}))
    before, archive, sent = (
        await landscape.everything(),
        await landscape.archived(),
        await landscape.delivered(),
    )

    await landscape.rebuild()

    assert await landscape.everything() == before
    assert await landscape.archived() == archive
    assert await landscape.delivered() == sent
    # The watermarks came back too: the stale assertion is still stale.
    assert await landscape.apply(vastgelegd("gebruik", USE, sequence="0002")) == []


async def test_a_gebruik_proposal_is_never_projected_as_a_gebruik(landscape: Harness) -> None:
    proposal = validate_event(
        {
            "specversion": "1.0",
            "id": "proposal-1",
            "source": SOURCE_A,
            "type": VOORGESTELD_TYPE,
            "subject": "app-1",
            "data": {"afnemer": "org-1", "applicatie": "app-1", "status": "In productie"},
        }
    )
    marker = vastgelegd("gebruik", USE)  # after the proposal, in the same batch: proves it was read

    derived = await landscape.apply(proposal, marker)

    assert [(e.type, e.subject) for e in derived] == [("nl.softwarecatalogus.gebruik.aangemaakt.v1", "use-1")]
    assert [o.state["id"] for o in (await landscape.everything())["gebruik"]] == ["use-1"]


async def test_objects_with_quotes_braces_and_accents_in_their_ids_are_found_again(
    landscape: Harness,
) -> None:
    odd = ['org "één"', "org\\{1,2}", "org 'x' [y]"]
    await landscape.apply(*(vastgelegd("organisatie", {**ORG, "id": i}) for i in odd))

    derived = await landscape.apply(
        *(vastgelegd("organisatie", {**ORG, "id": i, "naam": "Hernoemd"}) for i in odd),
        vastgelegd("applicatie", {**APP, "id": odd[0]}),
    )

    assert sorted((e.type.split(".")[-2], e.subject) for e in derived) == sorted(
        [("gewijzigd", i) for i in odd] + [("aangemaakt", odd[0])]
    )
