"""The rules of hub-to-hub federation (connectors.koppelhub.rules): what travels, what stays,
and how an event is marked so it never returns to a hub it was on."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.koppelhub.rules import VIA, came_from, relayed, via

A = "urn:nld:oin:00000000000000000001:systeem:koppelhub"
B = "urn:nld:oin:00000000000000000002:systeem:koppelhub"
C = "urn:nld:oin:00000000000000000003:systeem:koppelhub"
PARTNER = "urn:nld:oin:00000000000000000099:systeem:cmdb"


def event(kind: str = "nl.softwarecatalogus.applicatie.vastgelegd.v1", **attrs: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "e-1",
        "source": PARTNER,
        "type": kind,
        "subject": "app-1",
        "data": {"id": "app-1", "naam": "Zaaksysteem"},
        **attrs,
    }


@pytest.mark.parametrize(
    "kind",
    ["nl.softwarecatalogus.applicatie.vastgelegd.v1", "nl.softwarecatalogus.gebruik.ingetrokken.v1"],
)
def test_inbound_landscape_events_travel_with_their_own_source_id_and_data(kind: str) -> None:
    original = event(kind)

    out = relayed(original, here=B, there=A)

    assert out is not None
    assert {k: v for k, v in out.items() if k != VIA} == original
    assert out[VIA] == A


@pytest.mark.parametrize(
    "kind",
    [
        "nl.softwarecatalogus.applicatie.aangemaakt.v1",
        "nl.softwarecatalogus.applicatie.gewijzigd.v1",
        "nl.softwarecatalogus.gebruik.verwijderd.v1",
        "nl.koppelhub.delivery.dead.v1",
        "nl.signalen.melding.aangemaakt.v1",
    ],
)
def test_derived_and_non_landscape_events_stay_on_their_hub(kind: str) -> None:
    assert relayed(event(kind), here=B, there=A) is None


def test_an_event_that_was_on_this_hub_before_is_not_taken_back() -> None:
    # Published at B, copied to A (A's connector named B in koppelhubvia), read back by B.
    assert relayed(event(**{VIA: B}), here=B, there=A) is None
    # Passed through B on its way from C to A.
    assert relayed(event(**{VIA: f"{C} {B}"}), here=B, there=A) is None


@pytest.mark.parametrize(
    "source", [B, f"{B}:connector:5f0c2a1e-0000-4000-8000-000000000000", f"{B}:import:org-1"]
)
def test_an_event_this_hub_or_its_connectors_published_is_not_taken_back(source: str) -> None:
    assert came_from(event(source=source), B)
    assert relayed(event(source=source), here=B, there=A) is None


def test_a_source_that_merely_starts_like_this_hubs_urn_is_not_this_hub() -> None:
    assert not came_from(event(source=B + "2"), B)


def test_the_hub_read_from_is_appended_to_the_hubs_an_event_has_been_on() -> None:
    out = relayed(event(**{VIA: C}), here=B, there=A)

    assert out is not None and via(out) == [C, A]


def test_an_event_read_again_from_the_same_hub_is_not_marked_twice() -> None:
    out = relayed(event(**{VIA: f"{C} {A}"}), here=B, there=A)

    assert out is not None and via(out) == [C, A]


def test_a_chain_of_three_hubs_following_each_other_in_a_ring_stops_where_it_began() -> None:
    # A → B → C → A: published at A, each hub follows the previous one.
    at_b = relayed(event(source=f"{A}:import:org-1"), here=B, there=A)
    assert at_b is not None
    at_c = relayed(at_b, here=C, there=B)
    assert at_c is not None and via(at_c) == [A, B]

    assert relayed(at_c, here=A, there=C) is None
