"""The hub's own alert events, written in the transaction that changes the state they report.

Why not through Kafka: the dispatcher, which notices a dead delivery or disables a
subscription, works from PostgreSQL alone (no Kafka client), and a separate publish after the
commit could be lost in a crash between the two. Writing the alert the way the projector
writes an event (processed marker, archive row with a fresh ``seq``, one outbox row per
matching subscription, ``pg_notify``) inside the same transaction makes the alert exactly as
durable as the state change, and subscribers receive it like any other event. The alert is
not in the Kafka log, so a rebuild from Kafka does not see it; the archive does.

Alerts about deliveries of alert events are not generated (no alert storms, no loops), and
a subscription that selects nothing (no source, types or filters) does not receive alerts.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.adapters.postgres.projection import OUTBOX_CHANNEL
from hub.adapters.postgres.tables import deliveries, event_archive, processed_events, subscriptions
from schemas import CloudEvent
from subscriptions.filters import parse_filters
from subscriptions.model import subscription_matches

ALERT_TYPE_PREFIX = "nl.koppelhub."
DELIVERY_DEAD = "nl.koppelhub.delivery.dead.v1"
SUBSCRIPTION_DISABLED = "nl.koppelhub.subscription.disabled.v1"

_TAKE_SEQ = text("SELECT nextval(pg_get_serial_sequence('event_archive', 'seq'))")


def is_alert(event_type: str | None) -> bool:
    return bool(event_type) and str(event_type).startswith(ALERT_TYPE_PREFIX)


@dataclass(frozen=True)
class Alert:
    type: str
    subject: str  # the subscription id: alerts about one subscription stay in order
    data: Mapping[str, Any]


async def emit_alerts(conn: AsyncConnection, source_urn: str, alerts: Sequence[Alert]) -> int:
    """Archive each alert and queue it for every matching subscription; returns deliveries queued."""
    if not alerts:
        return 0
    rows = list(
        await conn.execute(
            select(subscriptions.c.id, subscriptions.c.source, subscriptions.c.types, subscriptions.c.filters)
        )
    )
    # A match-everything subscription (no source, types or filters) asked for the event flow,
    # not for the hub's operational alerts: alerts go only to subscriptions that select them.
    matchable = [
        (r.id, r.source, r.types, parse_filters(r.filters or []))
        for r in rows
        if r.source or r.types or r.filters
    ]
    queued = 0
    for alert in alerts:
        event = CloudEvent(
            specversion="1.0",
            id=str(uuid.uuid4()),
            source=source_urn,
            type=alert.type,
            subject=alert.subject,
            time=datetime.now(UTC),
            datacontenttype="application/json",
            data=dict(alert.data),
        )
        seq = int((await conn.execute(_TAKE_SEQ)).scalar_one())
        await conn.execute(
            insert(processed_events).values(source=event.source, event_id=event.id, archive_seq=seq)
        )
        await conn.execute(
            insert(event_archive).values(
                seq=seq,
                source=event.source,
                event_id=event.id,
                type=event.type,
                subject=event.subject,
                time=event.time,
                ordering_key=event.key(),
                event=event.to_structured(),
            )
        )
        attrs = event.attributes()
        targets = [
            sid
            for sid, source, types, filters in matchable
            if subscription_matches(source, types, filters, attrs)
        ]
        if targets:
            await conn.execute(
                insert(deliveries),
                [
                    {
                        "subscription_id": sid,
                        "archive_seq": seq,
                        "event_id": event.id,
                        "ordering_key": event.key(),
                    }
                    for sid in targets
                ],
            )
            queued += len(targets)
    if queued:
        await conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": OUTBOX_CHANNEL})
    return queued
