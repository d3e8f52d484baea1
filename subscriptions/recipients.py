"""Who receives an event: the one decision the projector, the alerts and replay/pull share.

A subscription receives an event when its ``source``, ``types`` and ``filters`` all hold for
the event's context attributes (:func:`subscriptions.model.subscription_matches`), with two
rules on top:

- a subscription that selects nothing (no source, no types, no filters) asked for the event
  flow, not for the hub's own operational events (``nl.koppelhub.*``,
  :mod:`schemas.hub_events`), so it receives none of those;
- a subscription owned by an organisation (``organisatie`` set) receives only events of that
  organisation (the ``organisatie`` extension attribute the hub sets on every event: from the
  publisher, the owner of a landscape object, the owner of a failing subscription) plus the
  public derived landscape events; a hub-wide one (``None``) receives everything. So one
  municipality's events (Signalen meldingen are personal data) never reach another's sink.

Pure: imports only ``schemas`` and this package.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from schemas.hub_events import is_hub_event
from schemas.landscape import parse_derived_type
from subscriptions.filters import Filter
from subscriptions.model import subscription_matches

__all__ = [
    "ORGANISATIE",
    "Selection",
    "event_attributes",
    "is_public",
    "receives",
    "recipients",
    "selects_anything",
]


class Selection(Protocol):
    """What a subscription selects (any record with these three attributes)."""

    @property
    def source(self) -> str | None: ...
    @property
    def types(self) -> Collection[str] | None: ...
    @property
    def filters(self) -> Sequence[Filter]: ...
    @property
    def organisatie(self) -> str | None: ...


S = TypeVar("S", bound=Selection)

#: The extension attribute naming the organisation an event belongs to.
ORGANISATIE = "organisatie"


def is_public(event_type: str) -> bool:
    """Derived landscape events carry public fields only: every organisation may receive them."""
    return parse_derived_type(event_type) is not None


def selects_anything(subscription: Selection) -> bool:
    """Whether the subscription narrows the flow at all (an empty ``types`` list does not)."""
    return bool(subscription.source or subscription.types or subscription.filters)


def receives(subscription: Selection, attrs: Mapping[str, str]) -> bool:
    """Whether an event with these context attributes (as strings) goes to ``subscription``."""
    if is_hub_event(attrs.get("type")) and not selects_anything(subscription):
        return False
    owner = subscription.organisatie
    if owner is not None and attrs.get(ORGANISATIE) != owner and not is_public(attrs.get("type", "")):
        return False
    return subscription_matches(subscription.source, subscription.types, subscription.filters, attrs)


def recipients(subscriptions: Iterable[S], attrs: Mapping[str, str]) -> list[S]:
    """The subscriptions that receive an event with these context attributes, in the given order."""
    return [s for s in subscriptions if receives(s, attrs)]


def event_attributes(event: Mapping[str, Any]) -> dict[str, str]:
    """The context attributes of a structured-mode event (as archived) as strings, for matching."""
    out: dict[str, str] = {}
    for name, value in event.items():
        if name in ("data", "data_base64"):
            continue
        out[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out
