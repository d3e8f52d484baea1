"""The write-ahead log: what makes a 202 durable when the broker keeps its log in memory.

The embedded broker (Tansu, in memory) loses every record on a hard kill; PostgreSQL does
not. With the write-ahead log on (the default with the embedded broker), :meth:`publish`
commits the accepted events to ``event_wal`` in PostgreSQL and sends them to the broker at
the same time: the API answers 202 only after both, so an accepted event is on disk. Concurrent
requests share one commit (:class:`GroupCommit`): what arrives while a commit is in flight goes
into the next one, one ``COPY`` and one commit for all of them, and each request goes on only
after the commit that holds its rows. At start,
before the API takes a request, :meth:`relay` sends the broker every row the projector has
not recorded in ``processed_events`` (a broker that survived gets them twice: the projector's
dedupe on ``source`` + ``id`` absorbs the overlap). :meth:`prune` deletes the rows that are
projected; the process runs it every :data:`PRUNE_SECONDS`, but only while rows were written
since the last prune that found nothing left (an idle hub sends PostgreSQL nothing).

If PostgreSQL cannot take the rows, publish raises :class:`DatabaseUnavailable` (the API
answers 503): never a 202 that only an in-memory log holds. If the broker refuses, the
API answers 503 too, but the rows stay: the process that was refused relays what is not
projected once the broker answers again (:meth:`relay_refused`, with the pruner), and every
start relays it too (at least once: a publisher that retries is deduplicated by the projector).
The pruner relays the same way when a publish's acknowledgement showed that the broker started
a new log (an external broker that keeps its log in memory, started again between two publishes).
And while rows are left, it sends again those the projector read past without projecting them
(a member that kept a position of a lost log: :mod:`hub.adapters.postgres.write_ahead_overdue`).

Dead letters go the same way: :meth:`dead_letter` keeps every parked record in
``dead_letter_log`` (and drops its write-ahead row: it will never be projected), and at start
:meth:`relay` parks them again when the broker came back with an empty dead-letter topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from sqlalchemy import delete, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.adapters.postgres.errors import translate_db_errors
from hub.adapters.postgres.group_commit import GroupCommit, WalRow, wal_row
from hub.adapters.postgres.write_ahead_overdue import LogEnds, OverdueRows
from hub.adapters.postgres.write_ahead_tables import dead_letter_log, event_wal
from hub.errors import RetriableError
from hub.ports import RecordLog
from schemas import CloudEvent
from schemas.bindings import KafkaRecord, to_kafka_record

__all__ = ["PRUNE_SECONDS", "GroupCommit", "WriteAheadEventLog"]

log = structlog.get_logger(__name__)

#: How often projected rows are deleted from the write-ahead log.
PRUNE_SECONDS = 2.0
#: How often a process whose own writes left the table empty looks at it again: rows another
#: process left there (``koppelhub import`` during an outage, a process that stopped) are then
#: pruned or relayed while this one runs, not only at the next start. One indexed statement.
REVISIT_SECONDS = 60.0
_CHUNK = 1_000
#: The rows not projected with ``seq`` in (``after``, ``through``] and accepted before ``cutoff``.
_UNPROJECTED = text(
    """
    SELECT w.seq, w.key, w.value, w.header_names, w.header_values FROM event_wal w
    WHERE w.seq > :after AND w.seq <= :through AND w.accepted_at < :cutoff AND NOT EXISTS (
        SELECT 1 FROM processed_events p WHERE p.source = w.source AND p.event_id = w.event_id)
    ORDER BY w.seq LIMIT :limit
    """
)
_ALL_SEQS = 2**63 - 1
_NEVER = datetime.max.replace(tzinfo=UTC)
_PRUNE = text(
    """
    DELETE FROM event_wal w USING processed_events p
    WHERE p.source = w.source AND p.event_id = w.event_id
    """
)

_ANY_LEFT = text("SELECT EXISTS (SELECT 1 FROM event_wal)")
#: Held while one process parks the kept dead letters again (the migration's lock is ...001).
_ONE_PARKER = text("SELECT pg_advisory_xact_lock(736525002)")


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

    async def ensure_topics(self) -> None: ...

    def lost_log_seen(self) -> bool: ...


def _row(record: KafkaRecord) -> dict[str, Any]:
    return {
        "key": record.key,
        "value": record.value,
        "header_names": [name for name, _ in record.headers],
        "header_values": [value for _, value in record.headers],
    }


def _record(row: Any) -> KafkaRecord:
    return KafkaRecord(row.key, row.value, list(zip(row.header_names, row.header_values, strict=True)))


def _header(headers: Sequence[tuple[str, bytes]], name: str) -> str | None:
    found = next((value for key, value in headers if key == name), None)
    return found.decode(errors="replace") if found is not None else None


class WriteAheadEventLog:
    """An event log that commits to PostgreSQL before it sends to the broker (see module)."""

    def __init__(self, engine: AsyncEngine, inner: _Log, *, inspector: LogEnds | None = None):
        self._engine, self._inner = engine, inner
        #: Rows the projector passed by, sent again (none without an inspector to read the log).
        self._passed_by = (
            OverdueRows(engine, inspector, self.relay_unprojected, self._log_lost)
            if inspector is not None
            else None
        )
        self.group = GroupCommit(engine)
        self._unpruned = True  # rows may be left from before this start
        self._unsent = False  # a publish the broker refused after its rows were committed

    async def close(self) -> None:
        """Close the group commit's connection."""
        await self.group.close()

    async def publish(self, events: Sequence[CloudEvent]) -> None:
        records = [to_kafka_record(e) for e in events]
        await self._write_and_send(
            [wal_row(e.source, e.id, r) for e, r in zip(events, records, strict=True)], records
        )

    async def publish_records(self, records: Sequence[KafkaRecord]) -> None:
        rows = [
            wal_row(_header(r.headers, "ce_source") or "", _header(r.headers, "ce_id") or "", r)
            for r in records
        ]
        await self._write_and_send(rows, records)

    async def _write_and_send(self, rows: list[WalRow], records: Sequence[KafkaRecord]) -> None:
        """Commit ``rows`` and send ``records`` to the broker at once; return when both are done.

        The two waits overlap instead of following each other (commit, then send): a request
        waits for the slower of the two, not their sum. The promise is the same: a return (the
        202) means the events are committed and acknowledged. What a failure leaves:
        - the commit failed (503): the database's error is raised. The broker may hold the
          events and project them once PostgreSQL is back, as any unanswered request may (a
          publisher that retries is deduplicated by the projector). While commits fail
          (:attr:`GroupCommit.failing`), a publish commits first and sends only then, as before,
          so an outage does not fill the broker's memory with refused events;
        - the broker refused but the commit held (503): the rows are relayed once the broker
          answers again (:meth:`relay_refused`), as before;
        - cancelled: the rows may still commit, the relay makes that at least once."""
        if not rows:
            await self._send(records)
            return
        self._unpruned = True
        if self.group.failing:
            await self.group.write(rows)
            await self._send(records)
            return
        committed = self.group.submit(rows)
        try:
            await self._inner.publish_records(records)
        except RetriableError:
            await committed  # a failed commit is the answer: nothing to relay
            self._unsent = True  # committed but refused: relayed once the broker answers again
            raise
        except BaseException:
            committed.cancel()  # nobody waits for it; the rows may still commit
            raise
        await committed
        # The projector may have recorded these events before their rows committed, and a prune
        # meanwhile found nothing to delete: the next one deletes them.
        self._unpruned = True

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
        relayed = await self.relay_unprojected()
        parked = await self._relay_dead_letters()
        log.info("write_ahead_relayed", events=relayed, dead_letters=parked)
        return relayed

    async def relay_unprojected(self, *, through: int = _ALL_SEQS, cutoff: datetime | None = None) -> int:
        """Send the broker the rows the projector has not recorded (those up to ``through``,
        accepted before ``cutoff``, when given), in acceptance order; how many were sent."""
        relayed, after = 0, 0
        bounds = {"through": through, "cutoff": cutoff or _NEVER, "limit": _CHUNK}
        while True:
            with translate_db_errors():
                async with self._engine.connect() as conn:
                    rows = list(await conn.execute(_UNPROJECTED, {"after": after, **bounds}))
            if not rows:
                return relayed
            await self._inner.publish_records([_record(r) for r in rows])
            relayed, after = relayed + len(rows), rows[-1].seq

    async def _relay_dead_letters(self) -> int:
        """Park the kept dead letters again when the dead-letter topic is empty, one process at
        a time: ``run``'s children start together after a broker restart, and each would find
        the topic empty and park every kept dead letter once more."""
        with translate_db_errors():
            async with self._engine.begin() as lock:
                await lock.execute(_ONE_PARKER)
                return await self._park_kept(lock)

    async def _park_kept(self, conn: AsyncConnection) -> int:
        """Park the kept dead letters, read in chunks on ``conn`` (the one holding the lock)."""
        if not await self._inner.dead_letter_topic_is_empty():
            return 0
        count, after = 0, 0
        while True:
            query = select(dead_letter_log).where(dead_letter_log.c.seq > after)
            rows = list(await conn.execute(query.order_by(dead_letter_log.c.seq).limit(_CHUNK)))
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

    def _log_lost(self) -> None:
        """The broker's log was seen lost another way (:class:`OverdueRows`): relay as after a
        refusal, topics first."""
        self._unsent = True

    async def relay_refused(self) -> int:
        """When a publish was refused after its rows were committed, or a publish's
        acknowledgement showed that the broker lost its log (``lost_log_seen``: one that keeps
        it in memory was started again), relay what is not projected (the refused rows, or what
        the lost log held; the overlap is absorbed by the projector's dedupe) while the hub
        runs, instead of at the next start. Returns how many events were relayed."""
        if self._inner.lost_log_seen():
            self._unsent = True
        if not self._unsent:
            return 0
        self._unsent = False
        try:
            # A broker that keeps its log in memory came back without its topics: create the
            # ones it lacks with the hub's partition count (else the relay's sends create them
            # with the broker's own), and before the look at the dead-letter topic's end waits
            # for it (up to 40 s, and then every round relayed again and never pruned).
            await self._inner.ensure_topics()
            relayed = await self.relay()
        except BaseException:
            self._unsent = True
            raise
        log.warning("write_ahead_refused_relayed", events=relayed)
        return relayed

    async def run_pruner(self, stop: asyncio.Event) -> None:
        """Every :data:`PRUNE_SECONDS` until ``stop``: relay what the broker refused
        (:meth:`relay_refused`), then prune, then, while rows are left, look for rows the
        projector passed by (:class:`OverdueRows`); an outage is waited out. Every
        :data:`REVISIT_SECONDS` the table is looked at again even when this process left it
        empty (rows of other processes)."""
        revisit = time.monotonic() + REVISIT_SECONDS
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), PRUNE_SECONDS)
            if time.monotonic() >= revisit:
                self._unpruned, revisit = True, time.monotonic() + REVISIT_SECONDS
            try:
                await self.relay_refused()
                await self._prune_if_written()
            except Exception as e:  # noqa: BLE001 - the next round tries again
                log.warning("write_ahead_prune_failed", error=str(e))
            if self._passed_by is not None and self._unpruned:
                await self._passed_by.look()
