"""The projector's transaction in PostgreSQL: dedupe, archive, outbox, in one commit.

A batch of a few events is four round trips: BEGIN; one statement for its archive positions,
dedupe marks, archive rows and the subscriptions' version (:func:`projection_sql.marks`); one
for its outbox rows and their NOTIFY; COMMIT. It was ten, and at 200 events/s the round trips,
not the rows, were the transaction's time (issue 17: latency). The subscriptions are read again
only when their version changed (:meth:`PostgresProjectionUnitOfWork.subscriptions`). A batch
without landscape events takes one: :meth:`PostgresProjectionStore.apply_at_once`.

Larger batches write the archive and outbox rows (plain inserts, no conflict to resolve) by
binary ``COPY`` on the transaction's own connection: psycopg writes each row in C with the
column types given once, and PostgreSQL reads them without parsing a JSON array of every row
and then each event's JSON again; there that saves more than the COPY's two round trips. The
dedupe marks are always an ``INSERT … ON CONFLICT DO NOTHING RETURNING``: that statement
decides what is new, which a ``COPY`` cannot.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import psycopg
from psycopg.types.json import set_json_dumps
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.adapters.postgres.errors import translate_db_errors
from hub.adapters.postgres.landscape import PostgresLandscapeUnitOfWork
from hub.adapters.postgres.projection_sql import AT_ONCE, SUBS_HASH, archive_fields, marks
from hub.ports import ArchivedEvent, LoggedEvent, MatchableSubscription, NewDelivery, Route
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
#: Events of one batch up to which their archive rows go in with their marks (:func:`projection_sql.marks`)
#: rather than by ``COPY`` after them: two round trips fewer, the events' JSON parsed by
#: PostgreSQL twice (the parameter, then the column) instead of once.
ARCHIVE_IN_ONE_STATEMENT = 64


_MARK = marks(with_archive=False)
_MARK_AND_ARCHIVE = marks(with_archive=True)

# The list itself with its version (as :data:`_MARK` computes it), read when that changed.
# FOR KEY SHARE: a DELETE waits for this transaction's outbox rows to commit (then cascades).
_SUBSCRIPTIONS = text(
    f"""
    SELECT s.id, s.source, s.types, s.filters, s.organisatie, s.updated_at,
           count(*) OVER () AS n, COALESCE(sum({SUBS_HASH}) OVER (), 0) AS h
    FROM (SELECT id, source, types, filters, organisatie, updated_at FROM subscriptions FOR KEY SHARE) AS s
    """  # noqa: S608 (constant SQL)
)

#: Outbox rows of one transaction up to which they go in by :data:`_QUEUE_AND_WAKE` rather
#: than by ``COPY`` and a NOTIFY (see :meth:`PostgresProjectionUnitOfWork.add_deliveries`).
QUEUE_IN_ONE_STATEMENT = 256
_QUEUE_AND_WAKE = text(
    """
    WITH queued AS (
        INSERT INTO deliveries (subscription_id, archive_seq, event_id, ordering_key)
        SELECT r.subscription_id, r.archive_seq, r.event_id, r.ordering_key
        FROM json_to_recordset(CAST(:rows AS json))
             AS r(subscription_id uuid, archive_seq bigint, event_id text, ordering_key text)
    )
    SELECT pg_notify(:channel, :payload)
    """
)

#: An event as read from the log: the event, its partition and offset, when the log accepted it.
_Logged = tuple[CloudEvent, int | None, int | None, datetime | None]

#: New outbox rows after which the projector refreshes the planner's statistics, at least …
ANALYZE_EVERY = 5_000
#: … and at least this share of the rows the last ANALYZE counted (see :class:`AnalyzeSchedule`).
ANALYZE_GROWTH = 0.25

#: Channel the projector notifies and the dispatchers listen on.
OUTBOX_CHANNEL = "koppelhub_outbox"


@dataclass
class _Subscriptions:
    """The store's subscriptions as last read, shared by its transactions: each one parsed once
    per ``updated_at``, and the whole list with the version it was read at (see :data:`_MARK`)."""

    parsed: dict[uuid.UUID, tuple[datetime, MatchableSubscription]] = field(default_factory=dict)
    version: tuple[int, int] | None = None
    listed: list[MatchableSubscription] = field(default_factory=list)


class PostgresProjectionUnitOfWork:
    """One open transaction of the projector (see :class:`hub.ports.ProjectionUnitOfWork`)."""

    def __init__(self, conn: AsyncConnection, known: _Subscriptions, payload: Callable[[], str] = str):
        self._conn = conn
        self._payload = payload  # of the NOTIFY (PostgresProjectionStore)
        self.notified: str | None = None  # the payload of its NOTIFY, once it queued rows
        self._known = known
        self._version: tuple[int, int] | None = None  # the subscriptions' version :data:`_MARK` saw
        self._landscape = PostgresLandscapeUnitOfWork(conn)
        self.deliveries_added = 0

    @property
    def landscape(self) -> PostgresLandscapeUnitOfWork:
        return self._landscape

    async def record_new(self, batch: Sequence[LoggedEvent]) -> list[ArchivedEvent]:
        first = _first(batch)
        if not first:
            return []
        together = len(first) <= ARCHIVE_IN_ONE_STATEMENT
        rows = [
            {"source": s, "event_id": i, "ord": n, **(archive_fields(*first[s, i]) if together else {})}
            for n, (s, i) in enumerate(first, start=1)
        ]
        statement = _MARK_AND_ARCHIVE if together else _MARK
        row = (
            await self._conn.execute(statement, {"n": len(first), "rows": orjson.dumps(rows).decode()})
        ).one()
        self._version = (row.n, row.h)
        fresh = set(row.fresh)
        archived = [(seq, first[key]) for key, seq in zip(first, row.seqs, strict=True) if seq in fresh]
        if together:
            return [ArchivedEvent(seq, item[0]) for seq, item in archived]
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
        """The list read last when :data:`_MARK` found the subscriptions' version unchanged
        since (no round trip, nothing parsed: issue 17, latency), else read and parsed anew.

        The version was read under FOR KEY SHARE, so no subscription in it can be deleted before
        this transaction's outbox rows commit; one created or changed since is a new version
        and read before the next batch is matched (tests/integration/test_projection_statements.py)."""
        known = self._known
        if self._version is not None and self._version == known.version:
            return known.listed
        listed: list[MatchableSubscription] = []
        version: tuple[int, int] = (0, 0)
        for row in await self._conn.execute(_SUBSCRIPTIONS):
            version = (row.n, row.h)
            cached = known.parsed.get(row.id)
            if cached is None or cached[0] != row.updated_at:
                parsed = MatchableSubscription(
                    id=row.id,
                    source=row.source,
                    types=frozenset(row.types) if row.types else None,
                    filters=tuple(parse_filters(row.filters or [])),
                    organisatie=row.organisatie,
                )
                cached = known.parsed[row.id] = (row.updated_at, parsed)
            listed.append(cached[1])
        for gone in set(known.parsed) - {s.id for s in listed}:
            del known.parsed[gone]
        known.version, known.listed = version, listed
        return listed

    async def add_deliveries(self, new: Sequence[NewDelivery]) -> None:
        """Queue ``new`` and NOTIFY the dispatchers (delivered to them when this transaction
        commits). Up to :data:`QUEUE_IN_ONE_STATEMENT` rows that is one statement, one round
        trip; a binary ``COPY`` costs two (the COPY's start and its end) and the NOTIFY a third,
        which at 200 events/s (a few events per batch) was longer than writing the rows. Larger
        batches take the ``COPY``: there psycopg's C row writer saves more than two round trips."""
        if not new:
            return
        self.deliveries_added += len(new)
        if len(new) <= QUEUE_IN_ONE_STATEMENT:
            rows = [
                {"subscription_id": d.subscription_id, "archive_seq": d.archive_seq,
                 "event_id": d.event_id, "ordering_key": d.ordering_key}
                for d in new
            ]  # fmt: skip
            wake = {"channel": OUTBOX_CHANNEL, "payload": self._payload()}
            await self._conn.execute(_QUEUE_AND_WAKE, {"rows": orjson.dumps(rows).decode(), **wake})
            self.notified = wake["payload"]
            return
        await self._copy(
            _QUEUE_COPY,
            _QUEUE_TYPES,
            [(d.subscription_id, d.archive_seq, d.event_id, d.ordering_key) for d in new],
        )
        wake = {"channel": OUTBOX_CHANNEL, "payload": self._payload()}
        await self._conn.execute(text("SELECT pg_notify(:channel, :payload)"), wake)
        self.notified = wake["payload"]


def _first(batch: Sequence[LoggedEvent]) -> dict[tuple[str, str], _Logged]:
    """The first occurrence of each source+id in the batch wins; later ones are duplicates."""
    first: dict[tuple[str, str], _Logged] = {}
    for item in batch:
        first.setdefault(
            (item.event.source, item.event.id), (item.event, item.partition, item.offset, item.accepted_at)
        )
    return first


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


#: Makes every commit before it durable: a transaction that writes to the write-ahead log (a
#: message of a few bytes, no table) and commits with ``synchronous_commit`` on (for itself
#: only) waits until the log is flushed past its commit, so past every earlier commit. (Only
#: taking a transaction id is not enough: one that wrote nothing commits asynchronously.) It
#: answers the incarnation's token (migration 0021), None right after a crash emptied it.
_FLUSH = text(
    "SELECT (SELECT CAST(token AS text) FROM projection_incarnation), "
    "set_config('synchronous_commit', 'on', true), "
    "pg_logical_emit_message(true, 'koppelhub.projection.durable', '')"
)
#: A new incarnation's token, or the one another member wrote first (several may flush at once
#: after a crash): the conflict's no-op update returns the row that is there.
_NEW_INCARNATION = text(
    "INSERT INTO projection_incarnation (id, token) VALUES (true, :token) "
    "ON CONFLICT (id) DO UPDATE SET id = EXCLUDED.id RETURNING CAST(token AS text)"
)


class PostgresProjectionStore:
    """Opens projector transactions on one engine.

    The hub gives it an engine whose commits are asynchronous (``synchronous_commit=off``,
    :func:`hub.adapters.postgres.engine.create_engine`): a batch's commit does not wait for the
    disk (2-8 ms per fsync on this machine kind), so its events reach the dispatcher sooner.
    A crash of PostgreSQL may then lose the last commits; that is safe because the projector
    commits the log positions past a batch only after :meth:`durable`: a lost batch is read
    again from the log and applied again (rows, marks and outbox rows are all in the lost
    transaction). A delivery sent from a lost batch is sent again: at least once, as for any
    crash between a POST and its recording."""

    def __init__(
        self,
        engine: AsyncEngine,
        notify_payload: Callable[[], str] = str,
        committed: Callable[[str], None] = lambda payload: None,
    ):
        self._engine = engine
        #: The payload of its outbox NOTIFYs, asked per NOTIFY: which dispatchers wake
        #: (hub/services/dispatcher_wakeup.py); empty (``str()``) wakes every one. ``committed``
        #: hears that payload once the rows it announced are committed (the wake-up in process).
        self._payload, self._committed = notify_payload, committed
        self._subscriptions = _Subscriptions()
        self.analyze = AnalyzeSchedule()
        # Autocommitted: the flush is one statement, one round trip.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    async def durable(self) -> str:
        with translate_db_errors():
            async with self._autocommit.connect() as conn:
                token: str | None = (await conn.execute(_FLUSH)).scalar_one()
                if token is None:  # the first flush since the crash (or ever): a new incarnation
                    token = (await conn.execute(_NEW_INCARNATION, {"token": uuid.uuid4()})).scalar_one()
        return token

    async def apply_at_once(self, batch: Sequence[LoggedEvent], route: Route) -> tuple[int, int] | None:
        """One autocommitted statement (:data:`projection_sql.AT_ONCE`), routed
        on the subscriptions as read last; None before they were read, for a batch larger than
        the one-statement bounds, or when they changed since (nothing written then)."""
        first, (version, listed) = _first(batch), (self._subscriptions.version, self._subscriptions.listed)
        if version is None or not first or len(first) > ARCHIVE_IN_ONE_STATEMENT:
            return None
        rows = [
            {"source": s, "event_id": i, "ord": n, **archive_fields(*logged),
             "recipients": [str(sid) for sid in route(listed, logged[0])]}
            for n, ((s, i), logged) in enumerate(first.items(), start=1)
        ]  # fmt: skip
        if sum(len(r["recipients"]) for r in rows) > QUEUE_IN_ONE_STATEMENT:
            return None
        payload = self._payload()
        params = {"n": len(first), "rows": orjson.dumps(rows).decode(), "channel": OUTBOX_CHANNEL,
                  "payload": payload}  # fmt: skip
        with translate_db_errors():
            async with self._autocommit.connect() as conn:
                versioned = {**params, "subs_n": version[0], "subs_h": version[1]}
                done = (await conn.execute(AT_ONCE, versioned)).one()
        if not done.known:
            return None
        if done.queued:  # committed (autocommit)
            self._committed(payload)
        await self._analyse_after(done.queued)
        return done.new, done.queued

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresProjectionUnitOfWork]:
        """Commit when the block ends normally, roll back when it raises."""
        with translate_db_errors():
            async with self._engine.begin() as conn:
                uow = PostgresProjectionUnitOfWork(conn, self._subscriptions, self._payload)
                yield uow
            if uow.notified is not None:  # committed
                self._committed(uow.notified)
            await self._analyse_after(uow.deliveries_added)

    async def _analyse_after(self, deliveries_added: int) -> None:
        if self.analyze.added(deliveries_added):
            self.analyze.analysed(self.analyze.counted)  # other members: not now as well
            async with self._engine.connect() as conn:
                await conn.execute(text("ANALYZE deliveries"))
                self.analyze.analysed((await conn.execute(_ANALYZED_ROWS)).scalar_one())
                await conn.commit()
