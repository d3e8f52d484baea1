"""Who receives an event: the one rule the projector, the alerts and replay/pull share."""

from __future__ import annotations

import uuid

from hub.ports import MatchableSubscription
from schemas.hub_events import (
    DELIVERY_DEAD,
    HUB_TYPE_PREFIX,
    SUBSCRIPTION_DISABLED,
    SUBSCRIPTION_TEST,
    is_hub_event,
)
from subscriptions.filters import parse_filters
from subscriptions.recipients import event_attributes, receives, recipients, selects_anything

SOURCE = "urn:nld:oin:00000001234567890000:systeem:zaaksysteem"
FLOW = {"specversion": "1.0", "id": "e-1", "source": SOURCE, "type": "nl.softwarecatalogus.app.vastgelegd.v1"}
ALERT = {**FLOW, "type": DELIVERY_DEAD, "source": "urn:nld:oin:00000000000000000000:systeem:koppelhub"}


def sub(source: str | None = None, types: list[str] | None = None, filters: list[dict] | None = None):
    return MatchableSubscription(
        uuid.uuid4(), source, frozenset(types) if types else None, tuple(parse_filters(filters or []))
    )


def test_a_subscription_that_selects_nothing_receives_the_flow_but_no_hub_events() -> None:
    everything = sub()
    assert not selects_anything(everything)
    assert receives(everything, FLOW)
    assert not receives(everything, ALERT)


def test_a_subscription_that_selects_hub_events_receives_them() -> None:
    by_type = sub(types=[DELIVERY_DEAD])
    by_prefix = sub(filters=[{"prefix": {"type": HUB_TYPE_PREFIX}}])
    assert receives(by_type, ALERT) and receives(by_prefix, ALERT)
    assert not receives(by_type, FLOW)


def test_an_empty_types_list_selects_nothing() -> None:
    empty = MatchableSubscription(uuid.uuid4(), None, frozenset(), ())
    assert not selects_anything(empty)
    assert not receives(empty, ALERT)


def test_recipients_keeps_the_matching_subscriptions_in_order() -> None:
    a, b, c = sub(source=SOURCE), sub(source="urn:other"), sub()
    assert recipients([a, b, c], FLOW) == [a, c]
    assert recipients([a, b, c], ALERT) == []


def test_archived_events_match_on_their_attributes_as_strings() -> None:
    attrs = event_attributes({**FLOW, "flag": True, "count": 3, "data": {"x": 1}})
    assert attrs["flag"] == "true" and attrs["count"] == "3" and "data" not in attrs
    assert receives(sub(filters=[{"exact": {"flag": "true"}}]), attrs)


def test_every_hub_event_type_carries_the_reserved_prefix() -> None:
    for t in (DELIVERY_DEAD, SUBSCRIPTION_DISABLED, SUBSCRIPTION_TEST):
        assert is_hub_event(t)
    assert not is_hub_event(FLOW["type"]) and not is_hub_event(None) and not is_hub_event("")


MELDING = {**FLOW, "type": "nl.signalen.melding.aangemaakt.v1"}
DERIVED = {**FLOW, "type": "nl.softwarecatalogus.gebruik.gewijzigd.v1", "organisatie": "gem-a"}


def owned(organisatie: str | None, types: list[str] | None = None) -> MatchableSubscription:
    return MatchableSubscription(uuid.uuid4(), None, frozenset(types) if types else None, (), organisatie)


def test_an_organisations_subscription_receives_only_its_own_events_and_the_public_derived_ones() -> None:
    gem_a, gem_b, hub_wide = owned("gem-a"), owned("gem-b"), owned(None)
    melding_a = {**MELDING, "organisatie": "gem-a"}
    assert receives(gem_a, melding_a) and not receives(gem_b, melding_a)
    assert receives(hub_wide, melding_a)
    assert not receives(gem_a, MELDING)  # an event of no organisation is the hub's, not gem-a's
    assert receives(gem_a, DERIVED) and receives(gem_b, DERIVED)  # public fields only


def test_an_alert_reaches_the_owning_organisation_and_hub_wide_watchers_only() -> None:
    alert_a = {**ALERT, "organisatie": "gem-a"}
    watchers = [owned(o, types=[DELIVERY_DEAD]) for o in ("gem-a", "gem-b", None)]
    assert [w.organisatie for w in recipients(watchers, alert_a)] == ["gem-a", None]
