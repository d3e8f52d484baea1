"""The projector's transaction in PostgreSQL: dedupe, archive, outbox, in one commit.

The archive and outbox rows (plain inserts, no conflict to resolve) go in by binary ``COPY``
on the transaction's own connection: psycopg writes each row in C with the column types given
once, and PostgreSQL reads them without parsing a JSON array of every row
(``jsonb_to_recordset``, :mod:`hub.adapters.postgres.bulk`) and then each event's JSON again.
The dedupe marks keep their ``INSERT … ON CONFLICT DO NOTHING RETURNING``: that statement
decides what is new, which a ``COPY`` cannot.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import psycopg
from psycopg.types.json import set_json_dumps
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.adapters.postgres.bulk import insert_statement, rows_param
from hub.adapters.postgres.errors import translate_db_errors
from hub.adapters.postgres.landscape import PostgresLandscapeUnitOfWork
from hub.adapters.postgres.tables import processed_events, subscriptions
from hub.ports import ArchivedEvent, LoggedEvent, MatchableSubscription, NewDelivery
from schemas import CloudEvent
from subscriptions.filters import parse_filters

# The sequence is looked up once per statement (MATERIALIZED): written as
# ``nextval(pg_get_serial_sequence(…))`` PostgreSQL resolved the name and cast it to a regclass
# for every value, 2.7 µs of backend CPU each against 0.5 (log_statement_stats; ~5 µs per
# projected event, which takes an archive position for itself and one for its derived event).
# One array row instead of one row per value: ~0.4 µs less of the projector's CPU per value.
_TAKE_SEQS = text(
    """
    WITH archive AS MATERIALIZED (
        SELECT CAST(pg_get_serial_sequence('event_archive', 'seq') AS regclass) AS seq
    )
    SELECT array_agg(nextval(archive.seq)) FROM archive, generate_series(1, :n)
    """
)

_PROCESSED = ("source", "event_id", "archive_seq")
_ARCHIVE_COPY = (
    "COPY event_archive (seq, source, event_id, type, subject, time, ordering_key, event, "
    "kafka_partition, kafka_offset, accepted_at) FROM STDIN (FORMAT BINARY)"
)
_ARCHIVE_TYPES = [
    psycopg.adapters.types.get_oid(t)
    for t in ("int8", *["text"] * 4, "timestamptz", "text", "jsonb", "int4", "int8", "timestamptz")
]
_QUEUE_COPY = (
    "COPY deliveries (subscription_id, archive_seq, event_id, ordering_key) FROM STDIN (FORMAT BINARY)"
)
_QUEUE_TYPES = [psycopg.adapters.types.get_oid(t) for t in ("uuid", "int8", "text", "text")]
_MARK = (
    insert_statement(processed_events, _PROCESSED)
    .on_conflict_do_nothing()
    .returning(processed_events.c.archive_seq)  # what is new, by the position it was handed
)

#: An event as read from the log: the event, its partition and offset, when the log accepted it.
_Logged = tuple[CloudEvent, int | None, int | None, datetime | None]

#: New outbox rows after which the projector refreshes the planner's statistics, at least …
ANALYZE_EVERY = 5_000
#: … and at least this share of the rows the last ANALYZE counted (see :class:`AnalyzeSchedule`).
ANALYZE_GROWTH = 0.25

#: Channel the projector notifies and the dispatchers listen on.
OUTBOX_CHANNEL = "koppelhub_outbox"


class PostgresProjectionUnitOfWork:
    """One open transaction of the projector (see :class:`hub.ports.ProjectionUnitOfWork`)."""

    def __init__(self, conn: AsyncConnection, cache: dict[uuid.UUID, tuple[datetime, MatchableSubscription]]):
        self._conn = conn
        self._cache = cache
        self._landscape = PostgresLandscapeUnitOfWork(conn)
        self.deliveries_added = 0

    @property
    def landscape(self) -> PostgresLandscapeUnitOfWork:
        return self._landscape

    async def record_new(self, batch: Sequence[LoggedEvent]) -> list[ArchivedEvent]:
        # The first occurrence of each source+id in the batch wins; later ones are duplicates.
        first: dict[tuple[str, str], _Logged] = {}
        for item in batch:
            first.setdefault(
                (item.event.source, item.event.id),
                (item.event, item.partition, item.offset, item.accepted_at),
            )
        if not first:
            return []
        candidates = dict(zip(first, await self._take_seqs(len(first)), strict=True))
        marks = [{"source": s, "event_id": i, "archive_seq": seq} for (s, i), seq in candidates.items()]
        fresh = set((await self._conn.execute(_MARK, rows_param(marks))).scalars())
        archived = [(seq, first[key]) for key, seq in candidates.items() if seq in fresh]
        return await self._insert_archive(archived)

    async def archive_derived(self, events: Sequence[CloudEvent]) -> list[ArchivedEvent]:
        # No dedupe row: a derived event exists once per new inbound event, which was deduped,
        # and its id is a function of that event's source and id.
        seqs = await self._take_seqs(len(events))
        return await self._insert_archive(
            [(seq, (e, None, None, None)) for seq, e in zip(seqs, events, strict=True)]
        )

    async def _take_seqs(self, n: int) -> list[int]:
        # Archive positions are taken up front and handed out in log order, so the archive
        # (and with it per-key delivery order) follows the log even inside one batch.
        return sorted((await self._conn.execute(_TAKE_SEQS, {"n": n})).scalar_one()) if n else []

    async def _insert_archive(self, archived: list[tuple[int, _Logged]]) -> list[ArchivedEvent]:
        if archived:
            await self._copy(
                _ARCHIVE_COPY, _ARCHIVE_TYPES, [_archive_row(seq, *item) for seq, item in archived]
            )
        return [ArchivedEvent(seq, item[0]) for seq, item in archived]

    async def _copy(self, statement: str, types: list[int], rows: Sequence[tuple[Any, ...]]) -> None:
        """``rows`` into a table by one binary ``COPY`` inside this transaction."""
        raw = (await self._conn.get_raw_connection()).driver_connection
        assert isinstance(raw, psycopg.AsyncConnection)
        async with raw.cursor() as cursor:
            set_json_dumps(orjson.dumps, cursor)  # the events' JSON in orjson's time, not json's
            async with cursor.copy(statement) as copy:
                copy.set_types(types)
                for row in rows:
                    await copy.write_row(row)

    async def subscriptions(self) -> Sequence[MatchableSubscription]:
        rows = await self._conn.execute(
            select(
                subscriptions.c.id,
                subscriptions.c.source,
                subscriptions.c.types,
                subscriptions.c.filters,
                subscriptions.c.organisatie,
                subscriptions.c.updated_at,
            ).with_for_update(key_share=True)  # a DELETE waits for our outbox rows' commit
        )
        result: list[MatchableSubscription] = []
        seen: set[uuid.UUID] = set()
        for row in rows:
            seen.add(row.id)
            cached = self._cache.get(row.id)
            if cached is None or cached[0] != row.updated_at:
                parsed = MatchableSubscription(
                    id=row.id,
                    source=row.source,
                    types=frozenset(row.types) if row.types else None,
                    filters=tuple(parse_filters(row.filters or [])),
                    organisatie=row.organisatie,
                )
                cached = (row.updated_at, parsed)
                self._cache[row.id] = cached
            result.append(cached[1])
        for gone in set(self._cache) - seen:
            del self._cache[gone]
        return result

    async def add_deliveries(self, new: Sequence[NewDelivery]) -> None:
        if not new:
            return
        self.deliveries_added += len(new)
        rows = [(d.subscription_id, d.archive_seq, d.event_id, d.ordering_key) for d in new]
        await self._copy(_QUEUE_COPY, _QUEUE_TYPES, rows)
        # Delivered to listeners only when this transaction commits.
        await self._conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": OUTBOX_CHANNEL})


def _archive_row(
    seq: int, event: CloudEvent, partition: int | None, offset: int | None, accepted_at: datetime | None
) -> tuple[Any, ...]:
    """One row of :data:`_ARCHIVE_COPY`, in its column order."""
    return (
        *(seq, event.source, event.id, event.type, event.subject, event.time, event.key()),
        *(event.to_structured(), partition, offset, accepted_at),
    )


@dataclass
class AnalyzeSchedule:
    """When the projector runs ``ANALYZE deliveries``: every :data:`ANALYZE_EVERY` new outbox
    rows while the outbox is young, then each time it grew by :data:`ANALYZE_GROWTH` of what the
    last ANALYZE counted.

    A burst into a young outbox outruns autovacuum, and statistics of an empty table make the
    dispatcher's claim walk every open row (migration 0002): that is what the early ANALYZEs
    are for. Once the statistics count tens of thousands of rows, 5,000 more change no plan,
    but each ANALYZE still samples up to 30,000 rows: at a fixed 5,000 the projection of 100,000
    events ran it 20 times, about 12 µs of PostgreSQL CPU per event (benchmarks.projection
    with and without it); with this schedule it runs 11 times."""

    counted: float = 0.0  # rows the last ANALYZE counted (pg_class.reltuples)
    unanalysed: int = 0  # outbox rows added since

    def added(self, rows: int) -> bool:
        """Count ``rows`` new outbox rows; True when the statistics are due for a refresh."""
        self.unanalysed += rows
        return self.unanalysed >= max(ANALYZE_EVERY, ANALYZE_GROWTH * self.counted)

    def analysed(self, counted: float) -> None:
        self.counted, self.unanalysed = max(counted, 0.0), 0


_ANALYZED_ROWS = text("SELECT reltuples FROM pg_class WHERE oid = CAST('deliveries' AS regclass)")


class PostgresProjectionStore:
    """Opens projector transactions on one engine."""

    def __init__(self, engine: AsyncEngine):
        self._engine = engine
        self._cache: dict[uuid.UUID, tuple[datetime, MatchableSubscription]] = {}
        self.analyze = AnalyzeSchedule()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresProjectionUnitOfWork]:
        """Commit when the block ends normally, roll back when it raises."""
        with translate_db_errors():
            async with self._engine.begin() as conn:
                uow = PostgresProjectionUnitOfWork(conn, self._cache)
                yield uow
            if self.analyze.added(uow.deliveries_added):
                self.analyze.analysed(self.analyze.counted)  # other members: not now as well
                async with self._engine.connect() as conn:
                    await conn.execute(text("ANALYZE deliveries"))
                    self.analyze.analysed((await conn.execute(_ANALYZED_ROWS)).scalar_one())
                    await conn.commit()
