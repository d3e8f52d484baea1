"""The internal subscription of a connector that writes back, kept in step with its config.

A connector whose config asks for ``writeBack`` consumes hub events through one subscription
the hub owns: sink ``connector:<connector id>``, protocol ``koppelhub-connector``, its id
derived from the connector's (so it is found again without a lookup table, and the connector's
API shows it). Its selection is the connector's ``writeBack`` (the kind's own event types by
default) and always an organisatie filter: the connector's own, or ``writeBack.organisaties``
(which only a functioneel-beheerder may point elsewhere; ``hub.api.connectors`` checks). The
``filters`` come on top and may not name ``organisatie``. Its retry schedule is the connector's
own or the global one. The subscription is the hub's: its API refuses to change it
(:func:`is_write_back`). The dispatcher delivers it like any subscription (at least once, in order per
melding, ``dead`` plus an alert, the delivery log, retry and replay) through
:class:`hub.services.writeback.ConnectorSink`.

A disabled connector pauses its subscription (requests stay queued until it is enabled again);
turning ``writeBack`` off or deleting the connector deletes it.
"""

from __future__ import annotations

import uuid
from typing import Any

from connectors import kinds as _kinds  # noqa: F401 - registers every connector kind
from connectors.ids import NAMESPACE
from connectors.registry import KINDS
from connectors.writeback import WriteBackConfig
from hub.errors import NotFound
from hub.ports import ConnectorRecord, SubscriptionDetails, SubscriptionStore
from hub.services.writeback import PROTOCOL, SINK_PREFIX, connector_sink
from subscriptions.filters import dump_filters, parse_filters
from subscriptions.signing import generate_secret

__all__ = [
    "is_write_back",
    "organisatie_filter",
    "remove_write_back",
    "sync_write_back",
    "write_back_organisaties",
    "write_back_selection",
    "write_back_subscription_id",
]


def write_back_subscription_id(connector_id: uuid.UUID) -> uuid.UUID:
    """The id of the connector's write-back subscription (derived: one per connector)."""
    return uuid.uuid5(NAMESPACE, f"write-back\x1f{connector_id}")


def write_back_selection(kind: str, organisatie: str, config: dict[str, Any]) -> dict[str, Any] | None:
    """The subscription columns of a (validated) connector config's ``writeBack`` (``types``,
    ``source``, ``filters``, ``retry_schedule``, ``max_concurrency``); None when it does not write
    back.

    ``ValueError`` (naming ``config.writeBack.filters``) when a filter is not a valid
    subscription filter; the API answers it with a 400."""
    cls = KINDS[kind]
    wb = getattr(cls.config_model.model_validate(config), "writeBack", None)
    if not isinstance(wb, WriteBackConfig):
        return None
    types = wb.types or list(cls.consumes)
    if not types:
        raise ValueError("config.writeBack.types: name the event types this connector applies")
    try:
        extra = dump_filters(parse_filters(wb.filters))
    except ValueError as e:
        raise ValueError(f"config.writeBack.filters: {e}") from e
    if _names_organisatie(extra):
        raise ValueError(
            "config.writeBack.filters: whose events a connector applies is not a filter's to say; "
            "set config.writeBack.organisaties (default: the connector's own organisatie)"
        )
    return {
        "types": types,
        "source": wb.source,
        "filters": [organisatie_filter(write_back_organisaties(organisatie, config)), *extra],
        "retry_schedule": wb.retrySchedule,
        "max_concurrency": wb.maxConcurrency,
    }


def write_back_organisaties(organisatie: str, config: dict[str, Any]) -> list[str]:
    """Whose events the connector applies: ``writeBack.organisaties`` or its own organisatie."""
    wb = config.get("writeBack")
    chosen = wb.get("organisaties") if isinstance(wb, dict) else None
    return list(chosen) if chosen else [organisatie]


def organisatie_filter(organisaties: list[str]) -> dict[str, Any]:
    if len(organisaties) == 1:
        return {"exact": {"organisatie": organisaties[0]}}
    return {"any": [{"exact": {"organisatie": o}} for o in organisaties]}


def _names_organisatie(found: Any) -> bool:
    """Whether a (dumped) filter anywhere tests the ``organisatie`` attribute."""
    if isinstance(found, dict):
        return "organisatie" in found or any(_names_organisatie(v) for v in found.values())
    if isinstance(found, list):
        return any(_names_organisatie(v) for v in found)
    return False


def is_write_back(subscription: SubscriptionDetails) -> bool:
    """A connector's internal write-back subscription (the hub's, not its caller's)."""
    return subscription.protocol == PROTOCOL or subscription.sink.startswith(SINK_PREFIX)


async def sync_write_back(
    subscriptions: SubscriptionStore, record: ConnectorRecord
) -> SubscriptionDetails | None:
    """Create, change, pause or delete the connector's write-back subscription to match
    ``record``; the subscription as it is now (None: the connector does not write back)."""
    selection = write_back_selection(record.kind, record.organisatie, record.config)
    sid = write_back_subscription_id(record.id)
    try:
        existing: SubscriptionDetails | None = await subscriptions.get(sid)
    except NotFound:
        existing = None
    if selection is None:
        if existing is not None:
            await remove_write_back(subscriptions, record.id)
        return None
    # The connector's organisation owns it (its beheerder sees its deliveries and alerts), unless
    # a functioneel-beheerder had it apply other organisations' events too: then it is hub-wide,
    # as an organisation's subscription receives only that organisation's events.
    organisaties = write_back_organisaties(record.organisatie, record.config)
    selection["organisatie"] = record.organisatie if organisaties == [record.organisatie] else None
    if existing is None:
        created = await subscriptions.create(
            id=sid,
            sink=connector_sink(record.id),
            protocol=PROTOCOL,
            headers={},
            config={"connector": str(record.id)},
            secret=generate_secret(),
            ordering="key",
            **selection,
        )
        if record.enabled:
            return created
        existing = created
    # The life-cycle switch only when it changes: resuming makes every queued request due now.
    toggle = record.enabled if (existing.status == "active") != record.enabled else None
    return await subscriptions.update(sid, selection, enabled=toggle)


async def remove_write_back(subscriptions: SubscriptionStore, connector_id: uuid.UUID) -> None:
    """Delete the connector's write-back subscription and its queue, if it has one."""
    try:
        await subscriptions.delete(write_back_subscription_id(connector_id))
    except NotFound:
        pass
