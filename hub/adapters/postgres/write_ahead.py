"""The write-ahead log: what makes a 202 durable when the broker keeps its log in memory.

The embedded broker (Tansu, in memory) loses every record on a hard kill; PostgreSQL does
not. With the write-ahead log on (the default with the embedded broker), :meth:`publish`
first commits the accepted events to ``event_wal`` in PostgreSQL and only then sends them to
the broker: the API answers 202 only after both, so an accepted event is on disk. Concurrent
requests share one commit (:class:`GroupCommit`): what arrives while a commit is in flight goes
into the next one, one ``COPY`` and one commit for all of them, and each request goes on only
after the commit that holds its rows. At start,
before the API takes a request, :meth:`relay` sends the broker every row the projector has
not recorded in ``processed_events`` (a broker that survived gets them twice: the projector's
dedupe on ``source`` + ``id`` absorbs the overlap). :meth:`prune` deletes the rows that are
projected; the process runs it every :data:`PRUNE_SECONDS`, but only while rows were written
since the last prune that found nothing left (an idle hub sends PostgreSQL nothing).

If PostgreSQL cannot take the rows, publish raises :class:`DatabaseUnavailable` (the API
answers 503): never a 202 that only an in-memory log holds. If the broker then refuses, the
API answers 503 too, but the rows stay: the process that was refused relays what is not
projected once the broker answers again (:meth:`relay_refused`, with the pruner), and every
start relays it too (at least once: a publisher that retries is deduplicated by the projector).

Dead letters go the same way: :meth:`dead_letter` keeps every parked record in
``dead_letter_log`` (and drops its write-ahead row: it will never be projected), and at start
:meth:`relay` parks them again when the broker came back with an empty dead-letter topic.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any, Protocol

import psycopg
import structlog
from psycopg.types.string import BytesBinaryDumper
from sqlalchemy import delete, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.adapters.postgres.errors import DataRejected, translate_db_errors
from hub.adapters.postgres.write_ahead_tables import dead_letter_log, event_wal
from hub.errors import RetriableError
from hub.ports import RecordLog
from schemas import CloudEvent
from schemas.bindings import KafkaRecord, to_kafka_record

__all__ = ["PRUNE_SECONDS", "GroupCommit", "WriteAheadEventLog"]

log = structlog.get_logger(__name__)

#: How often projected rows are deleted from the write-ahead log.
PRUNE_SECONDS = 2.0
_CHUNK = 1_000
#: Most rows one group commit takes; what is left waits for the next commit.
GROUP_ROWS = 5_000
#: How long opening the group commit's connection may take.
CONNECT_TIMEOUT_S = 10
#: The group commit connection's name in ``pg_stat_activity``.
APPLICATION_NAME = "koppelhub-write-ahead"
#: Binary COPY with the column types given once: no per-row type lookup, no hex escaping of
#: bytea (the text format's row writing was a third of a batch publish's CPU).
_COPY = (
    "COPY event_wal (source, event_id, key, value, header_names, header_values) FROM STDIN (FORMAT BINARY)"
)
_COPY_TYPES = [  # their oids, looked up once
    psycopg.adapters.types.get_oid(t) for t in ("text", "text", "bytea", "bytea", "text[]", "bytea[]")
]
_WalRow = tuple[str, str, bytes | None, bytes | None, list[str], list[bytes]]

_UNPROJECTED = text(
    """
    SELECT w.seq, w.key, w.value, w.header_names, w.header_values FROM event_wal w
    WHERE w.seq > :after AND NOT EXISTS (
        SELECT 1 FROM processed_events p WHERE p.source = w.source AND p.event_id = w.event_id)
    ORDER BY w.seq LIMIT :limit
    """
)
_PRUNE = text(
    """
    DELETE FROM event_wal w USING processed_events p
    WHERE p.source = w.source AND p.event_id = w.event_id
    """
)

_ANY_LEFT = text("SELECT EXISTS (SELECT 1 FROM event_wal)")


class _Log(RecordLog, Protocol):
    async def dead_letter(
        self,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
        error: BaseException,
        origin: Any,
    ) -> None: ...

    async def park_records(self, records: Sequence[KafkaRecord]) -> None: ...

    async def dead_letter_topic_is_empty(self) -> bool: ...


def _row(record: KafkaRecord) -> dict[str, Any]:
    return {
        "key": record.key,
        "value": record.value,
        "header_names": [name for name, _ in record.headers],
        "header_values": [value for _, value in record.headers],
    }


def _wal_row(source: str, event_id: str, record: KafkaRecord) -> _WalRow:
    names, values = [name for name, _ in record.headers], [value for _, value in record.headers]
    return (source, event_id, record.key, record.value, names, values)


class GroupCommit:
    """Write-ahead rows of concurrent requests in one ``COPY`` and one commit.

    One commit (and one fsync) per request was the write-ahead's whole cost under load. Here a
    request queues its rows and waits; one flusher at a time takes everything queued (up to
    :data:`GROUP_ROWS` rows), copies it into ``event_wal`` and commits, then answers every
    request in the group. Nothing waits for a timer: an idle hub commits a lone request at
    once, a busy one coalesces what arrived during the previous commit. A request is answered
    only after the commit that holds its rows, so the 202 still means "on disk". When a group
    fails on its data (:class:`DataRejected`), its requests are committed one by one, so one
    request's bad data never fails another's."""

    def __init__(self, engine: AsyncEngine):
        self._conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._queue: list[tuple[list[_WalRow], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.commits = 0  # how many commits it took (the tests see the coalescing)

    async def write(self, rows: list[_WalRow]) -> None:
        """Return once ``rows`` are committed; raise what the commit raised."""
        done = asyncio.get_running_loop().create_future()
        self._queue.append((rows, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="write-ahead-group-commit")
        await done  # cancelled: the rows may still commit; the relay makes that at least once

    async def _flush(self) -> None:
        while self._queue:
            group: list[tuple[list[_WalRow], asyncio.Future[None]]] = []
            size = 0
            while self._queue and (not group or size + len(self._queue[0][0]) <= GROUP_ROWS):
                group.append(self._queue.pop(0))
                size += len(group[-1][0])
            try:
                await self._commit([row for rows, _ in group for row in rows])
            except DataRejected as e:
                if len(group) == 1:
                    _answer(group, e)
                else:  # find the request whose data PostgreSQL refused; commit the others
                    for one in group:
                        try:
                            await self._commit(one[0])
                        except Exception as single:  # noqa: BLE001 - handed to its request
                            _answer([one], single)
                        else:
                            _answer([one], None)
            except Exception as e:  # noqa: BLE001 - every request in the group gets it (503)
                _answer(group, e)
            else:
                _answer(group, None)

    async def _commit(self, rows: list[_WalRow]) -> None:
        """One ``COPY`` on the group's own connection in autocommit: the statement is its own
        transaction, so a group costs one round trip of statements (no pool checkout with its
        ping, no ``BEGIN``/``COMMIT``). After any failure the connection is closed; when a kept
        connection turns out dropped (a database restart, an idle-session timeout), the group is
        copied once more on a new one, as the pool's ping would have spared it. A row committed
        just before the drop is then written twice: harmless, the relay is at least once and
        the projector drops duplicates."""
        with translate_db_errors():
            while True:
                kept = self._conn is not None and not self._conn.closed
                try:
                    await self._copy(rows)
                    break
                except psycopg.OperationalError:
                    dropped = self._conn is not None and self._conn.broken
                    await self.close()
                    if not (kept and dropped):
                        raise
                except BaseException:
                    await self.close()
                    raise
        self.commits += 1

    async def _copy(self, rows: list[_WalRow]) -> None:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                self._conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                application_name=APPLICATION_NAME,
            )  # fmt: skip
            # COPY after set_types() dumps by type oid, and for bytea that finds the DB-API
            # ``Binary`` wrapper's dumper, a Python subclass called for every key, value and
            # header value (9 calls a row). psycopg's own (C) bytes dumper, registered for the
            # oid only (``cls=None``, documented for exactly this case): 6 % less write-ahead CPU.
            self._conn.adapters.register_dumper(None, BytesBinaryDumper)
        async with self._conn.cursor() as cursor, cursor.copy(_COPY) as copy:
            copy.set_types(_COPY_TYPES)
            for row in rows:
                await copy.write_row(row)

    async def close(self) -> None:
        """Close the group's connection (the next commit would open another)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()


def _answer(group: list[tuple[list[_WalRow], asyncio.Future[None]]], error: BaseException | None) -> None:
    for _, done in group:
        if done.done():  # its request was cancelled meanwhile
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)


def _record(row: Any) -> KafkaRecord:
    return KafkaRecord(row.key, row.value, list(zip(row.header_names, row.header_values, strict=True)))


def _header(headers: Sequence[tuple[str, bytes]], name: str) -> str | None:
    found = next((value for key, value in headers if key == name), None)
    return found.decode(errors="replace") if found is not None else None


class WriteAheadEventLog:
    """An event log that commits to PostgreSQL before it sends to the broker (see module)."""

    def __init__(self, engine: AsyncEngine, inner: _Log):
        self._engine, self._inner = engine, inner
        self.group = GroupCommit(engine)
        self._unpruned = True  # rows may be left from before this start
        self._unsent = False  # a publish the broker refused after its rows were committed

    async def close(self) -> None:
        """Close the group commit's connection."""
        await self.group.close()

    async def publish(self, events: Sequence[CloudEvent]) -> None:
        records = [to_kafka_record(e) for e in events]
        self._unpruned = True
        await self.group.write([_wal_row(e.source, e.id, r) for e, r in zip(events, records, strict=True)])
        await self._send(records)

    async def publish_records(self, records: Sequence[KafkaRecord]) -> None:
        rows = [
            _wal_row(_header(r.headers, "ce_source") or "", _header(r.headers, "ce_id") or "", r)
            for r in records
        ]
        if rows:
            self._unpruned = True
            await self.group.write(rows)
        await self._send(records)

    async def _send(self, records: Sequence[KafkaRecord]) -> None:
        try:
            await self._inner.publish_records(records)
        except RetriableError:
            self._unsent = True  # committed but refused: relayed once the broker answers again
            raise

    async def dead_letter(
        self,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
        error: BaseException,
        origin: Any,
    ) -> None:
        """Keep the parked record (as the broker gets it), then park it in the broker."""
        parked = KafkaRecord(
            key,
            value,
            [
                *headers,
                ("koppelhub_error", str(error)[:2000].encode()),
                ("koppelhub_error_class", type(error).__name__.encode()),
                ("koppelhub_origin", f"{origin.topic}/{origin.partition}/{origin.offset}".encode()),
            ],
        )
        source, event_id = _header(headers, "ce_source"), _header(headers, "ce_id")
        with translate_db_errors():
            async with self._engine.begin() as conn:
                await conn.execute(insert(dead_letter_log), [_row(parked)])
                if source is not None and event_id is not None:  # never projected: not relayed again
                    await conn.execute(
                        delete(event_wal).where(
                            event_wal.c.source == source, event_wal.c.event_id == event_id
                        )
                    )
        await self._inner.dead_letter(key, value, headers, error, origin)

    async def relay(self) -> int:
        """Send the broker what was accepted but not projected, in acceptance order; park the
        kept dead letters again when the dead-letter topic came back empty. Returns how many
        events were relayed."""
        relayed, after = 0, 0
        while True:
            with translate_db_errors():
                async with self._engine.connect() as conn:
                    rows = list(await conn.execute(_UNPROJECTED, {"after": after, "limit": _CHUNK}))
            if not rows:
                break
            await self._inner.publish_records([_record(r) for r in rows])
            relayed, after = relayed + len(rows), rows[-1].seq
        parked = await self._relay_dead_letters()
        log.info("write_ahead_relayed", events=relayed, dead_letters=parked)
        return relayed

    async def _relay_dead_letters(self) -> int:
        if not await self._inner.dead_letter_topic_is_empty():
            return 0
        count, after = 0, 0
        while True:
            with translate_db_errors():
                async with self._engine.connect() as conn:
                    rows = list(
                        await conn.execute(
                            select(dead_letter_log)
                            .where(dead_letter_log.c.seq > after)
                            .order_by(dead_letter_log.c.seq)
                            .limit(_CHUNK)
                        )
                    )
            if not rows:
                return count
            await self._inner.park_records([_record(r) for r in rows])
            count, after = count + len(rows), rows[-1].seq

    async def prune(self) -> int:
        """Delete the rows the projector recorded; returns how many."""
        with translate_db_errors():
            async with self._engine.begin() as conn:
                return (await conn.execute(_PRUNE)).rowcount

    async def _prune_if_written(self) -> None:
        """Prune while rows were written since a prune last left the table empty. The flag is
        cleared before the DELETE, so a row written during it is seen next round; rows left
        (not projected yet) keep it set."""
        if not self._unpruned:
            return
        self._unpruned = False
        try:
            with translate_db_errors():
                async with self._engine.begin() as conn:
                    await conn.execute(_PRUNE)
                    if (await conn.execute(_ANY_LEFT)).scalar():
                        self._unpruned = True
        except BaseException:
            self._unpruned = True
            raise

    async def relay_refused(self) -> int:
        """When a publish was refused after its rows were committed, relay what is not projected
        (those rows among it; the overlap is absorbed by the projector's dedupe) while the hub
        runs, instead of at the next start. Returns how many events were relayed."""
        if not self._unsent:
            return 0
        self._unsent = False
        try:
            relayed = await self.relay()
        except BaseException:
            self._unsent = True
            raise
        log.warning("write_ahead_refused_relayed", events=relayed)
        return relayed

    async def run_pruner(self, stop: asyncio.Event) -> None:
        """Every :data:`PRUNE_SECONDS` until ``stop``: relay what the broker refused
        (:meth:`relay_refused`), then prune; an outage is waited out."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), PRUNE_SECONDS)
            try:
                await self.relay_refused()
                await self._prune_if_written()
            except Exception as e:  # noqa: BLE001 - the next round tries again
                log.warning("write_ahead_prune_failed", error=str(e))
