"""Who receives an event: the one decision the projector, the alerts and replay/pull share.

A subscription receives an event when its ``source``, ``types`` and ``filters`` all hold for
the event's context attributes (:func:`subscriptions.model.subscription_matches`), with one
rule on top: a subscription that selects nothing (no source, no types, no filters) asked for
the event flow, not for the hub's own operational events (``nl.koppelhub.*``,
:mod:`schemas.hub_events`), so it receives none of those. Pure: imports only ``schemas`` and
this package.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from schemas.hub_events import is_hub_event
from subscriptions.filters import Filter
from subscriptions.model import subscription_matches

__all__ = ["Selection", "event_attributes", "receives", "recipients", "selects_anything"]


class Selection(Protocol):
    """What a subscription selects (any record with these three attributes)."""

    @property
    def source(self) -> str | None: ...
    @property
    def types(self) -> Collection[str] | None: ...
    @property
    def filters(self) -> Sequence[Filter]: ...


S = TypeVar("S", bound=Selection)


def selects_anything(subscription: Selection) -> bool:
    """Whether the subscription narrows the flow at all (an empty ``types`` list does not)."""
    return bool(subscription.source or subscription.types or subscription.filters)


def receives(subscription: Selection, attrs: Mapping[str, str]) -> bool:
    """Whether an event with these context attributes (as strings) goes to ``subscription``."""
    if is_hub_event(attrs.get("type")) and not selects_anything(subscription):
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
