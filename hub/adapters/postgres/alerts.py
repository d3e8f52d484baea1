"""The hub's own alert events, written in the transaction that changes the state they report.

Why not through Kafka: the dispatcher, which notices a dead delivery or disables a
subscription, works from PostgreSQL alone (no Kafka client), and a separate publish after the
commit could be lost in a crash between the two. Writing the alert the way the projector
writes an event (processed marker, archive row with a fresh ``seq``, one outbox row per
matching subscription, ``pg_notify``) inside the same transaction makes the alert exactly as
durable as the state change, and subscribers receive it like any other event. The alert is
not in the Kafka log, so a rebuild from Kafka does not see it; the archive does.

Which alerts are raised is decided by :mod:`subscriptions.lifecycle`; who receives them by
:mod:`subscriptions.recipients`, the same rule as for every other event.
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
from hub.ports import MatchableSubscription
from schemas import CloudEvent
from subscriptions.filters import parse_filters
from subscriptions.recipients import ORGANISATIE, recipients

_TAKE_SEQ = text("SELECT nextval(pg_get_serial_sequence('event_archive', 'seq'))")


def matchable(
    subscription_id: uuid.UUID,
    source: str | None,
    types: list[str] | None,
    filters: list[Any] | None,
    organisatie: str | None = None,
) -> MatchableSubscription:
    """A stored subscription's selection, ready for :func:`subscriptions.recipients.recipients`."""
    selected = frozenset(types) if types else None
    return MatchableSubscription(
        subscription_id, source, selected, tuple(parse_filters(filters or [])), organisatie
    )


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
            select(
                subscriptions.c.id,
                subscriptions.c.source,
                subscriptions.c.types,
                subscriptions.c.filters,
                subscriptions.c.organisatie,
            )
        )
    )
    subscribers = [matchable(r.id, r.source, r.types, r.filters, r.organisatie) for r in rows]
    # An alert is about one subscription (its subject): it belongs to that one's organisation.
    owners = {str(r.id): r.organisatie for r in rows if r.organisatie is not None}
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
            **({ORGANISATIE: owners[alert.subject]} if alert.subject in owners else {}),
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
        targets = [s.id for s in recipients(subscribers, event.attributes())]
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
