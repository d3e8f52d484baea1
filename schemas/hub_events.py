"""The hub's own event types (``nl.koppelhub.*``): the one place they are declared.

Outside publishers may not send them (the events API refuses the prefix); the hub writes them
itself: alerts when a delivery goes dead or a subscription is disabled, and the signed test
event a subscriber can ask for. Depends on nothing.
"""

from __future__ import annotations

__all__ = [
    "DELIVERY_DEAD",
    "HUB_TYPE_PREFIX",
    "SUBSCRIPTION_DISABLED",
    "SUBSCRIPTION_TEST",
    "is_hub_event",
]

#: Type prefix reserved for the hub's own events.
HUB_TYPE_PREFIX = "nl.koppelhub."

#: Alert: a delivery used up its retry schedule.
DELIVERY_DEAD = HUB_TYPE_PREFIX + "delivery.dead.v1"
#: Alert: a subscription was disabled (its sink answered 410, or it failed for too long).
SUBSCRIPTION_DISABLED = HUB_TYPE_PREFIX + "subscription.disabled.v1"
#: The hub's alerts, as the console's overview lists them.
ALERTS = (DELIVERY_DEAD, SUBSCRIPTION_DISABLED)
#: The signed test event of ``POST /api/v1/subscriptions/{id}/test``.
SUBSCRIPTION_TEST = HUB_TYPE_PREFIX + "subscription.test.v1"


def is_hub_event(event_type: str | None) -> bool:
    """Whether ``event_type`` is one of the hub's own (reserved) types."""
    return bool(event_type) and str(event_type).startswith(HUB_TYPE_PREFIX)
