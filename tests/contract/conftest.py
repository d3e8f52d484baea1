"""One contract suite, two adapters: the in-memory twin and PostgreSQL must behave the same.

A ``landscape`` fixture gives each test a :class:`Harness` over one of them; the tests drive
the projector's own ``apply_events`` and read back through the read-side port.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from hub.adapters.memory import InMemoryProjectionStore
from hub.adapters.postgres.engine import create_engine
from hub.adapters.postgres.landscape import PostgresLandscapeStore
from hub.adapters.postgres.projection import PostgresProjectionStore
from hub.adapters.postgres.tables import deliveries, event_archive
from hub.ports import (
    COLLECTIONS,
    LandscapeReader,
    LoggedEvent,
    MatchableSubscription,
    RebuildableStore,
    StoredObject,
)
from hub.services.landscape import DerivedEvents, rebuild
from hub.services.projection import apply_events
from hub.services.projector import ProjectionStore
from schemas import CloudEvent, validate_event
from schemas.landscape import ingetrokken_type, vastgelegd_type
from subscriptions.filters import parse_filters
from tests.contract.delivery_harness import stores  # noqa: F401  (the delivery stores fixture)

HUB = "urn:nld:oin:00000000000000000099:systeem:koppelhub-test"
PUBLIC_URL = "https://hub.example"
SOURCE_A = "urn:nld:oin:00000001001234567000:systeem:zaaksysteem"
SOURCE_B = "urn:nld:oin:00000001009876543000:systeem:cmdb"
DERIVED_PREFIX = {"prefix": {"type": "nl.softwarecatalogus."}}


def _fixed() -> datetime:
    return datetime(2026, 11, 22, tzinfo=UTC)


@dataclass
class Harness:
    """Drives one store through the projector and reads it back."""

    projection: ProjectionStore
    reader: LandscapeReader
    rebuildable: RebuildableStore
    archived: Any  # async () -> list[(seq, CloudEvent)]
    delivered: Any  # async () -> list[(subscription id, archive seq)]
    subscription_id: uuid.UUID
    derive: DerivedEvents = field(
        default_factory=lambda: DerivedEvents(
            HUB, lambda: PUBLIC_URL, clock=lambda: datetime(2026, 11, 22, tzinfo=UTC)
        )
    )
    _offsets: itertools.count[int] = field(default_factory=itertools.count)

    async def apply(self, *events: CloudEvent) -> list[CloudEvent]:
        """Project one batch; returns the derived events it archived, in archive order."""
        before = {seq for seq, _ in await self.archived()}
        batch = [LoggedEvent(e, 0, next(self._offsets)) for e in events]
        await apply_events(self.projection, batch, self.derive)
        return [e for seq, e in await self.archived() if seq not in before and e.source == HUB]

    async def rebuild(self) -> None:
        await rebuild(self.rebuildable, chunk=3)  # small chunks: replays cross chunk borders

    async def everything(self) -> dict[str, list[StoredObject]]:
        """Every stored object per type, read page by page through the reader."""
        found: dict[str, list[StoredObject]] = {}
        for objecttype in COLLECTIONS:
            items, after = [], None
            while True:
                page = await self.reader.list(objecttype, {}, after=after, limit=2)
                items.extend(page.items)
                if page.next_cursor is None:
                    break
                after = page.next_cursor
            found[objecttype] = items
        return found


def _subscription() -> MatchableSubscription:
    return MatchableSubscription(uuid.uuid4(), None, None, tuple(parse_filters([DERIVED_PREFIX])))


@pytest.fixture(params=["memory", "postgres"])
async def landscape(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    if request.param == "memory":
        sub = _subscription()
        memory = InMemoryProjectionStore([sub])

        async def memory_archive() -> list[tuple[int, CloudEvent]]:
            return [(a.seq, a.event) for a in memory.archive]

        async def memory_deliveries() -> list[tuple[uuid.UUID, int]]:
            return [(d.subscription_id, d.archive_seq) for d in memory.deliveries]

        yield Harness(memory, memory, memory, memory_archive, memory_deliveries, sub.id)
        return

    from tests.support.hub_api import subscribe_in_store

    engine = create_engine(request.getfixturevalue("database_url"), pool_size=2)
    record = await subscribe_in_store(engine, "https://sink.example/hook", filters=[DERIVED_PREFIX])

    async def pg_archive() -> list[tuple[int, CloudEvent]]:
        async with engine.connect() as conn:
            rows = await conn.execute(select(event_archive.c.seq, event_archive.c.event).order_by("seq"))
            return [(row.seq, validate_event(row.event)) for row in rows]

    async def pg_deliveries() -> list[tuple[uuid.UUID, int]]:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(deliveries.c.subscription_id, deliveries.c.archive_seq).order_by("archive_seq")
            )
            return [(row.subscription_id, row.archive_seq) for row in rows]

    store = PostgresLandscapeStore(engine)
    try:
        yield Harness(PostgresProjectionStore(engine), store, store, pg_archive, pg_deliveries, record.id)
    finally:
        await engine.dispose()


def vastgelegd(objecttype: str, data: dict[str, Any], **attributes: Any) -> CloudEvent:
    """An inbound ``vastgelegd`` with a fresh id from SOURCE_A unless ``attributes`` say otherwise."""
    return _event(vastgelegd_type(objecttype), data, **attributes)


def ingetrokken(objecttype: str, object_id: str, **attributes: Any) -> CloudEvent:
    return _event(ingetrokken_type(objecttype), {"id": object_id}, **attributes)


def _event(event_type: str, data: dict[str, Any], **attributes: Any) -> CloudEvent:
    return validate_event(
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": SOURCE_A,
            "type": event_type,
            "subject": data["id"],
            "time": "2026-11-22T10:00:00Z",
            "datacontenttype": "application/json",
            "data": data,
            **attributes,
        }
    )
