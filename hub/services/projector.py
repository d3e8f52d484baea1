"""The projector: Kafka → PostgreSQL, one transaction per batch, offsets committed after.

Per batch it records every event as processed (a duplicate ``source``+``id`` changes
nothing), archives the new ones and writes one outbox row per matching subscription, all in
one transaction. Offsets are committed only after that transaction committed, so a crash at
any point replays records that the dedupe then skips.

Error policy: only infrastructure errors (:class:`RetriableError`: broker or database
unreachable) are retried, with backoff, until the hub stops (then the batch is left
uncommitted for the next owner). Anything that concerns one record goes to the dead-letter
topic with the error in its headers and the partition moves on: a record larger than any
event the hub accepts, one that is not a valid CloudEvent, one PostgreSQL or the serialiser
refuses (:class:`PermanentError`), and one that raises an error nobody foresaw. A batch that
fails as a whole is applied again record by record, so only the bad record is parked. A role
never dies of one record.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from hub.errors import PermanentError, RecordTooLarge, RetriableError
from hub.ports import LoggedEvent, NewDelivery, ProjectionUnitOfWork
from hub.services.landscape import DerivedEvents, project_landscape
from schemas import CloudEvent, EnvelopeError
from schemas.bindings import from_kafka_record
from subscriptions.model import subscription_matches

log = structlog.get_logger(__name__)

Batch = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]

#: A record may be this many times ``KOPPELHUB_MAX_EVENT_BYTES`` before it is parked unread.
#: Publish measures an event as received; its record is the data re-encoded plus headers,
#: which can grow (``1e15`` is written ``1000000000000000.0``, 4.5 times as long), so the
#: margin is wide. Larger records did not come through this hub's checks.
RECORD_BYTES_FACTOR = 8


class ProjectionStore(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[ProjectionUnitOfWork]: ...


class DeadLetters(Protocol):
    async def dead_letter(
        self,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
        error: BaseException,
        origin: Any,
    ) -> None: ...


@dataclass
class ProjectorStats:
    batches: int = 0
    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    derived: int = 0
    deliveries: int = 0
    stale: int = 0


@dataclass(frozen=True)
class Applied:
    """What one transaction did: events seen for the first time, events derived, outbox rows,
    and stale landscape events ignored."""

    new: int = 0
    derived: int = 0
    deliveries: int = 0
    stale: int = 0

    def __add__(self, other: Applied) -> Applied:
        return Applied(
            self.new + other.new,
            self.derived + other.derived,
            self.deliveries + other.deliveries,
            self.stale + other.stale,
        )


async def apply_events(
    store: ProjectionStore, batch: Sequence[LoggedEvent], derive: DerivedEvents | None
) -> Applied:
    """Apply one batch in one transaction: archive what is new, project the landscape events
    among it, archive the derived events that follow (when ``derive`` is given), and queue one
    delivery per matching subscription for all of them."""
    async with store.transaction() as uow:
        archived = await uow.record_new(batch)
        fresh = len(archived)
        projected = await project_landscape(uow.landscape, archived, derive)
        if projected.derived:
            archived += await uow.archive_derived(projected.derived)
        subs = await uow.subscriptions()
        new: list[NewDelivery] = []
        for item in archived:
            attrs = item.event.attributes()
            key = item.event.key()
            new.extend(
                NewDelivery(s.id, item.seq, item.event.id, key)
                for s in subs
                if subscription_matches(s.source, s.types, s.filters, attrs)
            )
        await uow.add_deliveries(new)
    return Applied(fresh, len(archived) - fresh, len(new), projected.stale)


class Projector:
    """One consumer-group member applying the log to the store."""

    def __init__(
        self,
        consumer_factory: Callable[[ConsumerRebalanceListener], AIOKafkaConsumer],
        store: ProjectionStore,
        dead_letters: DeadLetters,
        *,
        derive: DerivedEvents | None,
        batch_size: int = 500,
        members: int = 1,
        max_event_bytes: int | None = None,
    ):
        self._max_record_bytes = None if max_event_bytes is None else max_event_bytes * RECORD_BYTES_FACTOR
        self._derive = derive
        self._members = members
        self._started = 0
        self._consumer_factory = consumer_factory
        self._store = store
        self._dead_letters = dead_letters
        self._batch_size = batch_size
        self.stats = ProjectorStats()

    @property
    def running(self) -> bool:
        return self._started == self._members

    async def run(
        self, stop: asyncio.Event, *, drain: asyncio.Event | None = None, drain_timeout: float = 60.0
    ) -> None:
        """Consume until ``stop`` is set. When ``drain`` is set first, keep going until every
        assigned partition is caught up (what was accepted is projected), then return.

        Runs ``members`` consumers of the group side by side: while one waits for PostgreSQL,
        another decodes and validates its batch, so one process keeps both cores busy. Each
        partition still has one owner, so the events of one key stay in order."""
        await asyncio.gather(*(self._member(stop, drain, drain_timeout) for _ in range(self._members)))

    async def _member(self, stop: asyncio.Event, drain: asyncio.Event | None, drain_timeout: float) -> None:
        membership = _Membership()
        consumer = self._consumer_factory(membership)
        await consumer.start()
        self._started += 1
        drain_deadline: float | None = None
        try:
            async for batch in self._batches(consumer, stop):
                if batch:
                    await self._handle_with_retry(consumer, batch, stop)
                    continue
                if drain is not None and drain.is_set():
                    drain_deadline = drain_deadline or time.monotonic() + drain_timeout
                    caught_up = await _caught_up(consumer, membership)
                    if caught_up or time.monotonic() > drain_deadline:
                        log.info("projector_drained", caught_up=caught_up)
                        return
        finally:
            self._started -= 1
            await consumer.stop()

    async def _batches(self, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> AsyncIterator[Batch]:
        while not stop.is_set():
            yield await consumer.getmany(timeout_ms=200, max_records=self._batch_size)

    async def _handle_with_retry(self, consumer: AIOKafkaConsumer, batch: Batch, stop: asyncio.Event) -> None:
        # Broker or database outages: keep the batch and try again; never commit past it.
        # Records parked in the DLQ by an earlier try are not parked (nor applied) again.
        parked: set[tuple[int, int]] = set()

        async def pause(seconds: float) -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), seconds)

        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(RetriableError),
                stop=lambda _state: stop.is_set(),
                wait=wait_exponential(multiplier=0.2, max=10),
                sleep=pause,
                before_sleep=lambda state: log.warning(
                    "projection_retrying", error=str(state.outcome.exception() if state.outcome else "")
                ),
                reraise=True,
            ):
                with attempt:
                    await self._handle(batch, parked)
        except RetriableError as e:
            if not stop.is_set():
                raise
            # Stopping during an outage: leave the batch uncommitted; the next owner replays it.
            log.warning("projection_abandoned_on_stop", error=str(e)[:500])
            return
        offsets = {tp: records[-1].offset + 1 for tp, records in batch.items() if records}
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except CommitFailedError as e:
            # A rebalance took the partitions away; the new owner replays and dedupe skips.
            log.warning("offset_commit_failed", error=str(e))
        except KafkaError as e:
            log.warning("offset_commit_failed", error=str(e))

    def _decode(self, record: ConsumerRecord[bytes, bytes]) -> CloudEvent:
        """The record's event; RecordTooLarge, EnvelopeError or any other error otherwise."""
        if self._max_record_bytes is not None:
            size = len(record.value or b"") + len(record.key or b"")
            size += sum(len(name) + len(value or b"") for name, value in record.headers)
            if size > self._max_record_bytes:
                raise RecordTooLarge(
                    f"record is {size} bytes, more than {self._max_record_bytes} "
                    f"({RECORD_BYTES_FACTOR} x KOPPELHUB_MAX_EVENT_BYTES)"
                )
        return from_kafka_record(record.key, record.value, list(record.headers))

    async def _handle(self, batch: Batch, parked: set[tuple[int, int]]) -> None:
        decoded: list[tuple[LoggedEvent, ConsumerRecord[bytes, bytes]]] = []
        for tp, records in batch.items():
            for record in records:
                if (record.partition, record.offset) in parked:
                    continue
                try:
                    event = self._decode(record)
                except (EnvelopeError, RecordTooLarge) as e:
                    await self._dead_letter(record, e, parked)
                    continue
                except Exception as e:  # policy: one record never stops the role
                    log.exception("projection_record_unreadable", origin=_origin(record))
                    await self._dead_letter(record, e, parked)
                    continue
                decoded.append((LoggedEvent(event, tp.partition, record.offset), record))
        logged = [item for item, _ in decoded]
        try:
            done = await apply_events(self._store, logged, self._derive) if logged else Applied()
        except RetriableError:
            raise
        except Exception as e:  # noqa: BLE001 - PermanentError or unforeseen: find the record
            # One bad event must not sink its neighbours: retry them one by one.
            log.warning("projection_batch_rejected", error=str(e)[:500], size=len(logged))
            done = Applied()
            for item, record in decoded:
                done += await self._apply_one(item, record, parked)
        self.stats.batches += 1
        self.stats.applied += done.new
        self.stats.duplicates += len(logged) - done.new
        self.stats.derived += done.derived
        self.stats.deliveries += done.deliveries
        self.stats.stale += done.stale
        if logged:
            log.debug(
                "projection_applied",
                events=len(logged),
                new=done.new,
                derived=done.derived,
                deliveries=done.deliveries,
            )

    async def _apply_one(
        self, item: LoggedEvent, record: ConsumerRecord[bytes, bytes], parked: set[tuple[int, int]]
    ) -> Applied:
        """Apply one record on its own; park it when the error concerns it (not an outage)."""
        try:
            return await apply_events(self._store, [item], self._derive)
        except RetriableError:
            raise
        except PermanentError as e:
            await self._dead_letter(record, e, parked)
        except Exception as e:  # policy: one record never stops the role
            log.exception("projection_record_failed", origin=_origin(record), event_id=item.event.id)
            await self._dead_letter(record, e, parked)
        return Applied()

    async def _dead_letter(
        self, record: ConsumerRecord[bytes, bytes], error: BaseException, parked: set[tuple[int, int]]
    ) -> None:
        if (record.partition, record.offset) in parked:
            return
        await self._dead_letters.dead_letter(record.key, record.value, list(record.headers), error, record)
        parked.add((record.partition, record.offset))
        self.stats.dead_lettered += 1


def _origin(record: ConsumerRecord[bytes, bytes]) -> str:
    return f"{record.topic}/{record.partition}/{record.offset}"


class _Membership(ConsumerRebalanceListener):  # type: ignore[misc]
    """Whether the group has assigned this member its partitions yet (perhaps none)."""

    def __init__(self) -> None:
        self.assigned = False

    async def on_partitions_revoked(self, revoked: object) -> None:
        self.assigned = False

    async def on_partitions_assigned(self, assigned: object) -> None:
        self.assigned = True


async def _caught_up(consumer: AIOKafkaConsumer, membership: _Membership) -> bool:
    """True when the group assigned this member its partitions and it has read each up to its
    high-water mark; a member left without partitions (more members than partitions) is."""
    assignment = consumer.assignment()
    if not assignment:
        return membership.assigned
    for tp in assignment:
        highwater = consumer.highwater(tp)
        if highwater is None or await consumer.position(tp) < highwater:
            return False
    return True
