"""What a connector that writes back consumes: its ``writeBack`` config.

A connector kind that can apply hub events to its system (``Connector.consumes`` not empty)
offers ``writeBack`` in its config: ``true`` for the kind's own event types from the
connector's own organisation, or an object that narrows or widens the selection like a
subscription does (``types``, ``source``, ``filters``) and may set the delivery's own
``retrySchedule`` and ``maxConcurrency``. Whose events it applies is ``organisaties`` alone
(default: the connector's own; another only by a functioneel-beheerder, which the API checks): a filter on
``organisatie`` is refused, so no filter can widen or silently empty that selection.
The hub keeps one internal subscription per such connector (sink
``connector:<id>``) in step with this config (``hub.services.writeback_subscriptions``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["WriteBackConfig", "write_back_field"]


class WriteBackConfig(BaseModel):
    """Which hub events the connector applies to its system, selected like a subscription."""

    model_config = ConfigDict(extra="forbid")

    types: list[str] | None = Field(
        None, min_length=1, description="Event types applied; unset: the kind's own (e.g. status-verzoek)."
    )
    source: str | None = Field(None, min_length=1, description="Only events with exactly this source.")
    filters: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Subscription filters, on top of the organisatie selection (which no filter sets).",
    )
    organisaties: list[str] | None = Field(
        None,
        min_length=1,
        description="Organisations whose events are applied; unset: the connector's own. Another "
        "organisation's only when a functioneel-beheerder sets it.",
    )
    retrySchedule: list[float] | None = Field(
        None, min_length=1, description="Seconds between attempts; unset: the global delivery schedule."
    )
    maxConcurrency: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="Requests to the system in flight at once (as a subscription's maxConcurrency); "
        "unset: KOPPELHUB_DELIVERY_MAX_CONCURRENCY_PER_SUBSCRIPTION. Raise it only as far as the "
        "system takes it.",
    )


def write_back_field(value: Any) -> Any:
    """``writeBack: true`` is the default selection, ``false`` (or absent) none."""
    if value is True:
        return {}
    if value is False:
        return None
    return value
