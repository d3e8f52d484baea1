"""The rules of hub-to-hub federation (connectors.koppelhub.rules): what travels, what stays,
and how an event is marked so it never returns to a hub it was on."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass
class Federation:
    archive: dict[str, list[dict[str, Any]]]
    per_round: list[int]  # events republished per round
    duplicates: int = 0  # republished to a hub that already had the event (dedupe absorbed it)
    echoes: int = 0  # republished to the hub the event was first published on


def _federate(follows: dict[str, list[str]], published: dict[str, int]) -> Federation:
    """Hubs as archives with the projector's dedupe on source+id, each following the hubs in
    ``follows`` with one cursor per followed hub; rounds until a round republishes nothing."""
    f = Federation({h: [] for h in follows}, [])
    for hub, n in published.items():
        f.archive[hub] += [event(id=f"{hub}-{i}", source=f"{hub}:import:org-1") for i in range(n)]
    cursors = {(h, other): 0 for h, others in follows.items() for other in others}
    while len(f.per_round) < 20:
        republished = 0
        for (here, there), at in cursors.items():
            page = f.archive[there][at:]
            cursors[(here, there)] = len(f.archive[there])
            for e in page:
                out = relayed(e, here=here, there=there)
                if out is None:
                    continue
                republished += 1
                f.echoes += out["source"].startswith(here + ":")
                if any((x["source"], x["id"]) == (out["source"], out["id"]) for x in f.archive[here]):
                    f.duplicates += 1
                else:
                    f.archive[here].append(out)
        f.per_round.append(republished)
        if republished == 0:
            break
    return f


STAR = {"R": ["1", "2", "3"], "1": ["R"], "2": ["R"], "3": ["R"]}
MESH = {h: [o for o in "1234" if o != h] for h in "1234"}
RING = {"1": ["3"], "2": ["1"], "3": ["2"]}


@pytest.mark.parametrize(
    "follows", [pytest.param(STAR, id="star"), pytest.param(MESH, id="mesh"), pytest.param(RING, id="ring")]
)
def test_hubs_following_each_other_in_any_shape_converge_take_nothing_back_and_go_quiet(
    follows: dict[str, list[str]],
) -> None:
    published = {h: 2 for h in follows}

    f = _federate(follows, published)

    everything = sorted((f"{h}:import:org-1", f"{h}-{i}") for h, n in published.items() for i in range(n))
    for hub, events in f.archive.items():
        assert sorted((e["source"], e["id"]) for e in events) == everything, hub
    assert f.echoes == 0
    assert f.per_round[-1] == 0 and len(f.per_round) <= len(follows) + 1


@pytest.mark.parametrize("follows", [pytest.param(STAR, id="star"), pytest.param(RING, id="ring")])
def test_in_a_star_or_a_ring_every_event_is_republished_once_per_hub_it_reaches(
    follows: dict[str, list[str]],
) -> None:
    f = _federate(follows, {h: 2 for h in follows})

    assert f.duplicates == 0
    assert sum(f.per_round) == 2 * len(follows) * (len(follows) - 1)
