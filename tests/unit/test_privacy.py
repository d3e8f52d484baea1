"""The private-fields rule: an inbound landscape event leaves the hub with its private
fields only for the organisation that owns the object."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.landscape.privacy import owner_of, visible_event

GEM_A, GEM_B = "gem-a", "gem-b"


def gebruik_event(verb: str = "vastgelegd", **data: Any) -> dict[str, Any]:
    body = {"id": "g1", "afnemer": GEM_A, "applicatie": "app", "status": "In productie", **data}
    return {"specversion": "1.0", "id": "e1", "source": "urn:x", "subject": "g1",
            "type": f"nl.softwarecatalogus.gebruik.{verb}.v1", "data": body}  # fmt: skip


@pytest.mark.parametrize("recipient", [None, GEM_B])
def test_a_private_note_is_stripped_for_a_hub_wide_or_other_organisations_recipient(
    recipient: str | None,
) -> None:
    event = gebruik_event(interneAantekening="contract loopt af")
    seen = visible_event(event, recipient)
    assert "interneAantekening" not in seen["data"]
    assert seen["data"]["afnemer"] == GEM_A and seen["id"] == "e1"
    assert event["data"]["interneAantekening"] == "contract loopt af"  # the archived event is untouched


def test_the_owning_organisation_receives_its_private_note() -> None:
    event = gebruik_event(interneAantekening="contract loopt af")
    assert visible_event(event, GEM_A) is event


def test_events_without_private_fields_pass_unchanged() -> None:
    plain = gebruik_event()
    other = {"type": "nl.signalen.melding.gewijzigd.v1", "data": {"interneAantekening": "x"}}
    assert visible_event(plain, None) is plain
    assert visible_event(other, None) is other


@pytest.mark.parametrize(
    ("objecttype", "state", "owner"),
    [
        ("gebruik", {"afnemer": GEM_A}, GEM_A),
        ("applicatie", {"aanbieder": "lev"}, "lev"),
        ("applicatie", {"aanbieder": None}, None),
        ("koppeling", {"organisatie": GEM_B}, GEM_B),
        ("organisatie", {"id": GEM_A}, GEM_A),
        ("referentiecomponent", {"id": "rc"}, None),
    ],
)
def test_the_owner_of_each_object_type(objecttype: str, state: dict[str, Any], owner: str | None) -> None:
    assert owner_of(objecttype, state) == owner
