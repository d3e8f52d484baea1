"""Kafka adapter of :class:`hub.ports.operators.LogInspector`: lag, group members, the DLQ.

End offsets come from the high-water mark of a fetch, never from ``end_offsets()`` alone:
Tansu answers ListOffsets with the start of the last batch (INFRA.md; seen: 147 for a
partition holding 200 records). ``end_offsets()`` is used only as a starting point at or
before the true end, from which one short fetch reads the last batch and the high-water mark.
Every call uses its own group-less reader, so an operator's look never joins or moves the
projector's group.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.protocol.group import MemberAssignment

from hub.adapters.kafka import LogWritten
from hub.errors import BrokerUnavailable
from hub.ports.operators import (
    DeadLetter,
    DeadLetterPage,
    GroupMember,
    LogStatus,
    PartitionLag,
    Position,
    Redriven,
    Skipped,
)
from hub.settings import KafkaSettings
from schemas import EnvelopeError
from schemas.bindings import from_kafka_record

__all__ = ["KafkaLogInspector", "dead_letter_of", "original_headers"]

log = structlog.get_logger(__name__)

#: Headers the projector adds when it parks a record; a redrive sends the record without them.
PARKING_PREFIX = "koppelhub_"
#: How long one look at the log may take before the broker counts as unavailable.
LOOK_TIMEOUT_S = 10.0
#: Records republished per acknowledged send during a redrive.
REDRIVE_CHUNK = 500


def original_headers(headers: Iterable[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The record's headers as they were before it was parked."""
    return [(n, v) for n, v in headers if not n.startswith(PARKING_PREFIX)]


def dead_letter_of(
    partition: int,
    offset: int,
    timestamp_ms: int | None,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]],
) -> DeadLetter:
    """One DLQ record as an operator reads it: the reason, and the event as far as it decodes."""
    h = {n: v for n, v in headers if n.startswith(PARKING_PREFIX)}
    event: dict[str, Any] | None = None
    decode_error = None
    dropped = "koppelhub_value_dropped" in h
    if dropped:
        decode_error = f"parked without its value ({h['koppelhub_value_dropped'].decode()} bytes)"
    else:
        try:
            event = from_kafka_record(key, value, original_headers(headers)).to_structured()
        except (EnvelopeError, ValueError, UnicodeDecodeError) as e:
            decode_error = str(e)[:500]
    return DeadLetter(
        partition=partition,
        offset=offset,
        timestamp=datetime.fromtimestamp(timestamp_ms / 1000, UTC) if timestamp_ms else None,
        key=key.decode(errors="replace") if key is not None else None,
        error=h.get("koppelhub_error", b"").decode(errors="replace"),
        error_class=h.get("koppelhub_error_class", b"").decode(errors="replace"),
        origin=h.get("koppelhub_origin", b"").decode(errors="replace"),
        event=event,
        decode_error=decode_error,
        value_dropped=dropped,
    )


class KafkaLogInspector:
    """Looks at the events topic, the projector's group and the DLQ; redrives with ``producer``
    (the process's event-log producer: acks=all)."""

    def __init__(
        self,
        bootstrap: str,
        settings: KafkaSettings,
        producer: AIOKafkaProducer,
        *,
        written: LogWritten | None = None,
    ):
        self._bootstrap, self._s, self._producer = bootstrap, settings, producer
        #: Told after a redrive wrote to the event topic, so idle projector members fetch at once.
        self._written = written
        # One reader and one admin client, started on first use and kept: a fresh pair cost
        # 35-50 ms per look (bootstrap and coordinator round trips). One look at a time.
        self._lock = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None

    async def close(self) -> None:
        """Stop the reader and the admin client (the next look starts them again)."""
        consumer, admin, self._consumer, self._admin = self._consumer, self._admin, None, None
        with contextlib.suppress(KafkaError):
            if consumer is not None:
                await consumer.stop()
            if admin is not None:
                await admin.close()

    @contextlib.asynccontextmanager
    async def _reader(self) -> AsyncIterator[AIOKafkaConsumer]:
        """The group-less reader, for one look: its partitions paused afterwards, so it fetches
        nothing between looks; closed after an error, so the next look reconnects."""
        async with self._lock:
            try:
                if self._consumer is None:
                    consumer = AIOKafkaConsumer(
                        bootstrap_servers=self._bootstrap,
                        group_id=None,
                        enable_auto_commit=False,
                        auto_offset_reset="latest",  # a start beyond the end reads nothing rather than all
                        fetch_max_wait_ms=10,
                    )
                    await consumer.start()
                    self._consumer = consumer
                try:
                    yield self._consumer
                finally:
                    # Paused, not unassigned: aiokafka's stop() hung on a fetcher after unsubscribe().
                    self._consumer.pause(*self._consumer.assignment())
            except (KafkaError, TimeoutError) as e:
                await self.close()
                raise BrokerUnavailable(f"cannot read the log: {e!r}") from e

    async def _admin_client(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap)
            await admin.start()
            self._admin = admin
        return self._admin

    async def _partitions(self, consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
        await consumer.topics()  # refreshes metadata
        return [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]

    async def _ends(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """The true end of each partition: read from ListOffsets' answer (at or before the end)
        until the position reaches the fetch's high-water mark. Assigning anew forgets the
        high-water marks of the previous look."""
        consumer.assign(tps)
        if not tps:
            return {}
        estimate = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, estimate[tp])
        async with asyncio.timeout(LOOK_TIMEOUT_S):
            while True:
                pending = [tp for tp in tps if not await self._at_end(consumer, tp)]
                if not pending:
                    break
                await consumer.getmany(*pending, timeout_ms=20)
        return {tp: int(consumer.highwater(tp)) for tp in tps}

    @staticmethod
    async def _at_end(consumer: AIOKafkaConsumer, tp: TopicPartition) -> bool:
        highwater = consumer.highwater(tp)
        return highwater is not None and await consumer.position(tp) >= highwater

    async def status(self) -> LogStatus:
        s = self._s
        try:
            async with self._reader() as reader:
                events = await self._partitions(reader, s.topic)
                dlq = await self._partitions(reader, s.dlq_topic)
                ends = await self._ends(reader, [*events, *dlq])
                starts = await reader.beginning_offsets(dlq) if dlq else {}
                committed, members, state = await self._group(events)
        except (KafkaError, TimeoutError) as e:
            raise BrokerUnavailable(f"cannot read the log's status: {e!r}") from e
        return LogStatus(
            topic=s.topic,
            group=s.consumer_group,
            group_state=state,
            partitions=tuple(
                PartitionLag(tp.partition, ends[tp], committed.get(tp.partition)) for tp in events
            ),
            members=members,
            dlq_topic=s.dlq_topic,
            dlq_records=sum(ends[tp] - starts.get(tp, 0) for tp in dlq),
        )

    async def _group(self, tps: list[TopicPartition]) -> tuple[dict[int, int], tuple[GroupMember, ...], str]:
        admin = await self._admin_client()
        offsets = await admin.list_consumer_group_offsets(self._s.consumer_group, partitions=tps)
        described = await admin.describe_consumer_groups([self._s.consumer_group])
        committed = {tp.partition: o.offset for tp, o in offsets.items() if o.offset >= 0}
        members: list[GroupMember] = []
        state = "Unknown"
        for response in described:
            for group in response.groups:
                state = group[2] or state
                for m in group[5]:
                    members.append(GroupMember(m[0], m[1], m[2], _assigned(m[4], self._s.topic)))
        return committed, tuple(members), state

    async def dead_letters(self, *, after: Position | None, limit: int) -> DeadLetterPage:
        items: list[DeadLetter] = []
        last: Position | None = None
        more = False
        try:
            async with self._reader() as reader:
                tps = await self._partitions(reader, self._s.dlq_topic)
                ends = await self._ends(reader, tps)
                starts = await reader.beginning_offsets(tps) if tps else {}
                for tp in tps:
                    start = starts[tp]
                    if after is not None:
                        if tp.partition < after.partition:
                            continue
                        if tp.partition == after.partition:
                            start = max(start, after.offset + 1)
                    if len(items) >= limit:
                        more = more or start < ends[tp]
                        continue
                    async for r in self._records(reader, tp, start, ends[tp]):
                        if len(items) >= limit:
                            more = True
                            break
                        items.append(
                            dead_letter_of(
                                tp.partition, r.offset, r.timestamp, r.key, r.value, tuple(r.headers)
                            )
                        )
                        last = Position(tp.partition, r.offset)
        except (KafkaError, TimeoutError) as e:
            raise BrokerUnavailable(f"cannot read the dead-letter topic: {e!r}") from e
        cursor = f"{last.partition}:{last.offset}" if more and last is not None else None
        return DeadLetterPage(items, cursor)

    async def _records(
        self, reader: AIOKafkaConsumer, tp: TopicPartition, start: int, end: int
    ) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
        """The records of ``tp`` from ``start`` up to (not including) ``end``, in order."""
        if start >= end:
            return
        reader.assign([tp])
        reader.seek(tp, start)
        async with asyncio.timeout(LOOK_TIMEOUT_S):
            while await reader.position(tp) < end:
                batch = await reader.getmany(tp, timeout_ms=100, max_records=REDRIVE_CHUNK)
                for r in batch.get(tp, []):
                    if r.offset >= end:
                        return
                    yield r

    async def redrive(self, positions: Sequence[Position] | None) -> Redriven:
        wanted: dict[int, set[int]] | None = None
        if positions is not None:
            wanted = {}
            for p in positions:
                wanted.setdefault(p.partition, set()).add(p.offset)
        done = Redriven()
        try:
            async with self._reader() as reader:
                tps = await self._partitions(reader, self._s.dlq_topic)
                ends = await self._ends(reader, tps)
                starts = await reader.beginning_offsets(tps) if tps else {}
                for tp in tps:
                    offsets = None if wanted is None else wanted.pop(tp.partition, set())
                    if offsets is not None and not offsets:
                        continue
                    first = starts[tp] if offsets is None else max(min(offsets), starts[tp])
                    last = ends[tp] if offsets is None else min(max(offsets) + 1, ends[tp])
                    found: set[int] = set()
                    sends = []
                    async for r in self._records(reader, tp, first, last):
                        if offsets is not None and r.offset not in offsets:
                            continue
                        found.add(r.offset)
                        if any(n == "koppelhub_value_dropped" for n, _ in r.headers):
                            done.skipped.append(Skipped(tp.partition, r.offset, "parked without its value"))
                            continue
                        sends.append(
                            await self._producer.send(
                                self._s.topic, key=r.key, value=r.value, headers=original_headers(r.headers)
                            )
                        )
                        done.redriven.append(Position(tp.partition, r.offset))
                        if len(sends) >= REDRIVE_CHUNK:
                            await asyncio.gather(*sends)
                            sends = []
                    await asyncio.gather(*sends)
                    for missing in sorted((offsets or set()) - found):
                        done.skipped.append(Skipped(tp.partition, missing, "no such record in the DLQ"))
        except (KafkaError, TimeoutError) as e:
            raise BrokerUnavailable(f"cannot redrive: {e!r}") from e
        finally:
            if done.redriven and self._written is not None:
                self._written.notify()
        for partition, offsets in sorted((wanted or {}).items()):
            done.skipped.extend(
                Skipped(partition, o, "no such partition in the DLQ") for o in sorted(offsets)
            )
        if done.redriven:
            log.info("dead_letters_redriven", count=len(done.redriven), skipped=len(done.skipped))
        return done


def _assigned(raw: bytes, topic: str) -> tuple[int, ...]:
    """The partitions of ``topic`` in a member's assignment (empty when the broker sent none)."""
    if not raw:
        return ()
    try:
        assignment = MemberAssignment.decode(raw)
    except Exception:  # noqa: BLE001 - a broker's odd assignment bytes must not break the status
        return ()
    return tuple(sorted(p for t, ps in assignment.assignment for p in ps if t == topic))
