"""One harness over both delivery back ends: subscriptions, outbox and deliveries, in memory or
in PostgreSQL, with a way to publish events into the archive and queue them (the projector's
``apply_events`` for PostgreSQL; the twin database's ``publish`` for memory) and to read a
delivery's row back."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from hub.adapters.memory import (
    InMemoryDatabase,
    InMemoryDeliveryStore,
    InMemoryOutbox,
    InMemorySubscriptionStore,
)
from hub.adapters.postgres.deliveries import PostgresDeliveryStore
from hub.adapters.postgres.engine import create_engine
from hub.adapters.postgres.outbox import PostgresOutbox
from hub.adapters.postgres.projection import PostgresProjectionStore
from hub.adapters.postgres.subscriptions import PostgresSubscriptionStore
from hub.adapters.postgres.tables import deliveries
from hub.ports import AttemptResult, ClaimedDelivery, DeliveryStore, LoggedEvent, Outbox, SubscriptionStore
from hub.services.projection import apply_events
from schemas import CloudEvent, validate_event

HUB = "urn:nld:oin:00000000000000000099:systeem:koppelhub-test"
SOURCE = "urn:nld:oin:00000001001234567000:systeem:zaaksysteem"
LEASE = 60.0


@dataclass
class DeliveryHarness:
    subscriptions: SubscriptionStore
    outbox: Outbox
    deliveries: DeliveryStore
    _publish: Any  # async (events) -> None
    _row: Any  # async (delivery id) -> dict
    _make_due: Any  # async () -> None: every open delivery due now (time travel)
    outbox_disabling_after: Any  # (seconds) -> Outbox: one whose failure limit is ``seconds``
    spare_outbox: Outbox  # a spare dispatcher's (KOPPELHUB_DISPATCH_PROCESSES)
    _offsets: itertools.count[int] = field(default_factory=itertools.count)

    async def subscribe(self, **options: Any) -> uuid.UUID:
        created = await self.subscriptions.create(
            sink=options.pop("sink", "https://sink.example/hook"),
            protocol="HTTP",
            source=options.pop("source", None),
            types=options.pop("types", None),
            filters=options.pop("filters", []),
            headers={},
            config={},
            secret="whsec_" + "A" * 32,
            **options,
        )
        return created.id

    async def publish(self, *events: CloudEvent) -> None:
        await self._publish(list(events))

    async def row(self, delivery_id: uuid.UUID) -> dict[str, Any]:
        return dict(await self._row(delivery_id))

    async def make_due(self) -> None:
        await self._make_due()

    async def log(self, subscription_id: uuid.UUID, status: str | None = None) -> list[dict[str, Any]]:
        page = await self.subscriptions.deliveries(subscription_id, status=status, limit=1000, cursor=None)
        return page.items


def event(subject: str = "key-1", n: int = 0, **attributes: Any) -> CloudEvent:
    return validate_event(
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": SOURCE,
            "type": "nl.example.thing.changed.v1",
            "subject": subject,
            "datacontenttype": "application/json",
            "data": {"n": n},
            **attributes,
        }
    )


def outcome(
    c: ClaimedDelivery, status: str, *, code: int | None = 500, retry_in: float | None = 30.0, **more: Any
) -> AttemptResult:
    """What the dispatcher would record for claim ``c`` (``status`` decided by the caller)."""
    now = datetime.now(UTC)
    next_at = now + timedelta(seconds=retry_in) if status == "failed" and retry_in is not None else None
    return AttemptResult(
        delivery_id=c.id,
        subscription_id=c.subscription_id,
        attempt=c.attempts + 1,
        started_at=now,
        duration_ms=1.0,
        status_code=code,
        error=None if status == "delivered" else f"http_{code}",
        response_excerpt="",
        new_status=status,
        next_attempt_at=more.pop("next_attempt_at", next_at),
        event_id=c.event_id,
        event_type=str(c.event.get("type", "")),
        sink=c.sink,
        archive_seq=c.archive_seq,
        ordering_key=c.ordering_key if c.ordering == "key" else None,
        **more,
    )


@pytest.fixture(params=["memory", "postgres"])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[DeliveryHarness]:
    if request.param == "memory":
        db = InMemoryDatabase()

        async def memory_publish(events: list[CloudEvent]) -> None:
            db.publish(events)

        async def memory_row(delivery_id: uuid.UUID) -> dict[str, Any]:
            return vars(db.deliveries[delivery_id])

        async def memory_due() -> None:
            for d in db.deliveries.values():
                d.next_attempt_at = datetime.now(UTC) - timedelta(seconds=1)

        def memory_outbox(seconds: float) -> InMemoryOutbox:
            return InMemoryOutbox(db, source_urn=HUB, disable_after_seconds=seconds)

        yield DeliveryHarness(
            InMemorySubscriptionStore(db),
            memory_outbox(3600),
            InMemoryDeliveryStore(db),
            memory_publish,
            memory_row,
            memory_due,
            memory_outbox,
            InMemoryOutbox(db, source_urn=HUB, spare=True),
        )
        return

    engine = create_engine(request.getfixturevalue("database_url"), pool_size=2)
    projection = PostgresProjectionStore(engine)
    offsets = itertools.count()

    async def pg_publish(events: list[CloudEvent]) -> None:
        await apply_events(projection, [LoggedEvent(e, 0, next(offsets)) for e in events], None)

    async def pg_row(delivery_id: uuid.UUID) -> dict[str, Any]:
        async with engine.connect() as conn:
            query = select(deliveries).where(deliveries.c.id == delivery_id)
            return dict((await conn.execute(query)).one()._mapping)

    async def pg_due() -> None:
        async with engine.begin() as conn:
            past = datetime.now(UTC) - timedelta(seconds=1)
            await conn.execute(update(deliveries).values(next_attempt_at=past, leased_until=None))

    def pg_outbox(seconds: float) -> PostgresOutbox:
        return PostgresOutbox(engine, source_urn=HUB, disable_after_seconds=seconds)

    try:
        yield DeliveryHarness(
            PostgresSubscriptionStore(engine),
            pg_outbox(3600),
            PostgresDeliveryStore(engine),
            pg_publish,
            pg_row,
            pg_due,
            pg_outbox,
            PostgresOutbox(engine, source_urn=HUB, spare=True),
        )
    finally:
        await engine.dispose()
