"""Kafka adapter: the event log, its topics and its dead-letter topic (aiokafka).

Events travel in the CloudEvents Kafka binding, binary content mode (``schemas.bindings``);
the record key is the ``partitionkey`` extension, else the subject. The producer uses
``acks=all`` without idempotence: Tansu rejects aiokafka's InitProducerId (INFRA.md), and
the projector's dedupe on ``source``+``id`` absorbs the duplicates a retried send may cause.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, TopicAlreadyExistsError

from hub.adapters.partitioner import partition_for
from hub.errors import BrokerUnavailable
from hub.settings import KafkaSettings
from schemas import CloudEvent
from schemas.bindings import KafkaRecord, to_kafka_record

log = structlog.get_logger(__name__)

#: How long a publish waits for the broker's acknowledgement before it gives up.
SEND_TIMEOUT_S = 15.0
#: Records per partition the producer sends together. aiokafka keeps one request in flight per
#: broker, so with its default (16 KB) an import waited on ~1,000 round trips per 100 MB.
MAX_BATCH_BYTES = 512 * 1024
#: Up to this many records a publish appends to the producer's open batches (one future per
#: record), so concurrent small requests share produce requests: aiokafka sends one request per
#: broker at a time and takes one batch per partition into it, so a batch of its own per
#: single-event request made 16 concurrent requests wait on several round trips. More records
#: go as batches of their own (one future per batch).
FEW_RECORDS = 16
#: The consumers' background fetch routine's longest sleep (see :func:`make_consumer`).
CONSUMER_TIMEOUT_MS = 2_000


async def ensure_topics(bootstrap: str, settings: KafkaSettings) -> None:
    """Create the event and dead-letter topics when they do not exist yet."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(name, settings.partitions, settings.replication_factor)
            for name in (settings.topic, settings.dlq_topic)
            if name not in existing
        ]
        if wanted:
            try:
                await admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass  # another role created it first
            log.info("topics_created", topics=[t.name for t in wanted])
    except KafkaError as e:
        raise BrokerUnavailable(f"cannot create topics on {bootstrap}: {e}") from e
    finally:
        await admin.close()


def make_producer(bootstrap: str, settings: KafkaSettings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        linger_ms=settings.linger_ms,
        compression_type=None,
        max_batch_size=MAX_BATCH_BYTES,
        request_timeout_ms=int(SEND_TIMEOUT_S * 1000),
    )


def make_consumer(
    bootstrap: str,
    settings: KafkaSettings,
    *,
    group_id: str | None = None,
    listener: ConsumerRebalanceListener | None = None,
    client_id: str,
) -> AIOKafkaConsumer:
    """A consumer-group member with manual commits, reading from the start for a new group;
    ``listener`` hears every assignment (also an empty one). ``client_id`` is the start of the
    member id the broker gives it (``hub.ports.members``)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        group_id=group_id or settings.consumer_group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",  # "latest" may deliver old records on Tansu; earliest is exact
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=settings.heartbeat_interval_ms,
        max_poll_interval_ms=300_000,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        # How often the background fetch routine looks around when nothing happens (200 ms by
        # default): fetch answers, resumed partitions and rebalances wake it anyway, so the
        # timer only woke an idle member five times a second (issue 17: idle CPU).
        consumer_timeout_ms=CONSUMER_TIMEOUT_MS,
    )
    consumer.subscribe([settings.topic], listener=listener)
    return consumer


class LogWritten:
    """Tells log consumers that the event topic was written to, so an idle one fetches at once
    instead of at its next look (``hub.adapters.kafka_consumer``). Each consumer subscribes
    its own event and clears only that one.

    :meth:`notify` is this process's write: it wakes this process's consumers and, through
    :attr:`announce` when set, other processes' (``hub.adapters.postgres.notify``);
    :meth:`heard` is another process's write, announced to this one: it wakes this
    process's consumers only. Without an announcer, another process's writes are found at the
    consumers' next look (``KOPPELHUB_KAFKA_IDLE_POLL_MS``)."""

    def __init__(self) -> None:
        self._events: list[asyncio.Event] = []
        #: Tells other processes (set by the wiring when they may be listening).
        self.announce: Callable[[], None] | None = None

    def subscribe(self) -> asyncio.Event:
        event = asyncio.Event()
        self._events.append(event)
        return event

    def unsubscribe(self, event: asyncio.Event) -> None:
        if event in self._events:
            self._events.remove(event)

    def notify(self) -> None:
        self.heard()
        if self.announce is not None:
            self.announce()

    def heard(self) -> None:
        for event in self._events:
            event.set()


def dead_letter_headers(error: BaseException, origin: Any) -> list[tuple[str, bytes]]:
    """The headers a dead-lettered record carries besides its own: why it was parked, and
    where it came from (``topic/partition/offset`` of ``origin``)."""
    return [
        ("koppelhub_error", str(error)[:2000].encode()),
        ("koppelhub_error_class", type(error).__name__.encode()),
        ("koppelhub_origin", f"{origin.topic}/{origin.partition}/{origin.offset}".encode()),
    ]


class KafkaEventLog:
    """The :class:`hub.ports.EventLog` on Kafka."""

    def __init__(self, bootstrap: str, settings: KafkaSettings):
        self._settings, self._bootstrap = settings, bootstrap
        self._producer = make_producer(bootstrap, settings)
        #: Set after every write to the event topic (acknowledged or not: some may have landed).
        self.written = LogWritten()
        #: Per partition of the event topic, an offset the broker acknowledged (the highest
        #: record's, or a batch's first); whether an acknowledgement showed that the broker
        #: started a new log (:meth:`lost_log_seen`), and how many times it did (:meth:`_note`).
        self._acked: dict[int, int] = {}
        self._lost = False
        self._logs = 0

    @property
    def producer(self) -> AIOKafkaProducer:
        return self._producer

    async def start(self) -> None:
        try:
            await self._producer.start()
        except KafkaError as e:
            raise BrokerUnavailable(f"cannot reach Kafka: {e}") from e

    async def stop(self) -> None:
        await self._producer.stop()

    async def publish(self, events: Sequence[CloudEvent]) -> None:
        """Send every event and wait until the broker acknowledged all of them (one produce
        future per event; the API's small batches keep this path's timing)."""
        try:
            futures = []
            for n, event in enumerate(events, 1):
                record = to_kafka_record(event)
                futures.append(
                    await self._producer.send(
                        self._settings.topic, value=record.value, key=record.key, headers=record.headers
                    )
                )
                if n % 500 == 0:  # a big batch must not hold the event loop (issue 9: /healthz stalled)
                    await asyncio.sleep(0)
            await asyncio.wait_for(asyncio.gather(*futures), timeout=SEND_TIMEOUT_S)
        except (KafkaError, TimeoutError) as e:
            raise BrokerUnavailable(f"Kafka did not acknowledge: {e!r}") from e
        finally:
            self.written.notify()

    async def publish_records(self, records: Sequence[KafkaRecord]) -> None:
        """Send records already in the CloudEvents binding and wait until the broker acknowledged
        all of them, each in the partition the default partitioner's murmur2 gives its key (where
        :meth:`AIOKafkaProducer.send` would put it). Up to :data:`FEW_RECORDS` go into the
        producer's open batches; more are grouped per partition into batches sent in order: one
        future per batch instead of one per record."""
        if not records:
            return
        topic = self._settings.topic
        before, logs = self._acked.copy(), self._logs
        try:
            partitions = sorted(await self._producer.partitions_for(topic))
            choose = partition_for  # as aiokafka's DefaultPartitioner, at half its cost
            if len(records) <= FEW_RECORDS:
                acks = [await self._send_one(topic, choose(r.key, partitions, partitions), r)
                        for r in records]  # fmt: skip
            else:
                per_partition: dict[int, list[KafkaRecord]] = {}
                for record in records:
                    p = choose(record.key, partitions, partitions)
                    per_partition.setdefault(p, []).append(record)
                sends = [self._send_partition(topic, p, rs) for p, rs in per_partition.items()]
                acks = [f for fs in await asyncio.gather(*sends) for f in fs]
            # A timeout scope rather than wait_for(gather(...)): no waiter future, no gathering
            # future for the common single acknowledgement of a structured publish.
            async with asyncio.timeout(SEND_TIMEOUT_S):
                await (acks[0] if len(acks) == 1 else asyncio.gather(*acks))
        except (KafkaError, TimeoutError) as e:
            raise BrokerUnavailable(f"Kafka did not acknowledge: {e!r}") from e
        finally:
            self.written.notify()
        self._note(before, logs, acks)

    def _note(self, before: dict[int, int], logs: int, acks: Sequence[asyncio.Future[Any]]) -> None:
        """Keep an acknowledged offset per partition. A send made after offset ``n`` of its
        partition was acknowledged lands above ``n`` in the same log: an acknowledgement at or
        below it means the broker started a new one (a broker that keeps its log in memory was
        started again, empty, at the same address; an unclean leader election that truncated
        it), whether or not a publish was refused in between. Then every partition is new: the
        offsets kept are dropped, and those of publishes that began before are not kept."""
        if logs != self._logs:
            return  # began in the log before the one seen since: its offsets may be the old log's
        for ack in acks:
            meta = ack.result()
            if meta is None or meta.offset < 0:
                continue  # no offset to compare (a broker that does not say)
            partition, offset = meta.partition, meta.offset
            seen = before.get(partition, -1)
            if offset <= seen:
                log.warning("kafka_log_lost_seen", partition=partition, offset=offset, acknowledged=seen)
                self._lost, self._logs = True, self._logs + 1
                self._acked = {partition: offset}
                return
            if offset > self._acked.get(partition, -1):
                self._acked[partition] = offset

    def lost_log_seen(self) -> bool:
        """Whether a publish's acknowledgement showed a new log since the last call
        (:meth:`_note`); the write-ahead log then relays what the lost one held."""
        seen, self._lost = self._lost, False
        return seen

    async def _send_one(self, topic: str, partition: int, r: KafkaRecord) -> asyncio.Future[Any]:
        """Append one record to the producer's open batch of its partition (shared with the
        other requests' records sent meanwhile); its acknowledgement."""
        send = self._producer.send
        ack: asyncio.Future[Any] = await send(topic, r.value, r.key, partition=partition, headers=r.headers)
        return ack

    async def _send_partition(
        self, topic: str, partition: int, records: Sequence[KafkaRecord]
    ) -> list[asyncio.Future[Any]]:
        """Queue ``records`` for one partition in as few batches as fit; the acknowledgements."""
        acks: list[asyncio.Future[Any]] = []
        batch = self._producer.create_batch()
        for r in records:
            # An empty batch takes any record, however large, so a retry always fits.
            if batch.append(key=r.key, value=r.value, timestamp=None, headers=r.headers) is None:
                acks.append(await self._producer.send_batch(batch, topic, partition=partition))
                batch = self._producer.create_batch()
                batch.append(key=r.key, value=r.value, timestamp=None, headers=r.headers)
        if batch.record_count():
            acks.append(await self._producer.send_batch(batch, topic, partition=partition))
        return acks

    async def dead_letter(
        self,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
        error: BaseException,
        origin: Any,
    ) -> None:
        """Park a record the projector cannot apply, with the reason in its headers.

        Parking must not fail on the record itself: when the broker refuses it as too large,
        it is parked without its value (header ``koppelhub_value_dropped`` = the value's size),
        and if even that is too large, without its key and original headers as well."""
        extra = dead_letter_headers(error, origin)
        dropped = ("koppelhub_value_dropped", str(len(value or b"")).encode())
        tries: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]] = [
            (key, value, [*headers, *extra]),
            (key, None, [*headers, *extra, dropped]),
            (None, None, [*extra, dropped, ("koppelhub_headers_dropped", str(len(headers)).encode())]),
        ]
        for parked_key, parked_value, parked_headers in tries:
            try:
                await self._producer.send_and_wait(
                    self._settings.dlq_topic, value=parked_value, key=parked_key, headers=parked_headers
                )
                break
            except MessageSizeTooLargeError as e:
                log.warning("dead_letter_too_large", error=str(e), size=len(value or b""))
            except KafkaError as e:
                raise BrokerUnavailable(f"cannot write to the dead-letter topic: {e}") from e
        else:  # not even the reason fits: say so rather than jam the partition
            log.error("dead_letter_dropped", origin=f"{origin.topic}/{origin.partition}/{origin.offset}")
            return
        log.warning(
            "event_dead_lettered",
            origin=f"{origin.topic}/{origin.partition}/{origin.offset}",
            error=str(error)[:500],
            error_class=type(error).__name__,
        )

    async def ping(self) -> bool:
        """True when the broker answers a metadata request."""
        try:
            await asyncio.wait_for(self._producer.client.fetch_all_metadata(), timeout=2.0)
        except (KafkaError, TimeoutError):
            return False
        return True

    async def park_records(self, records: Sequence[KafkaRecord]) -> None:
        """Put records on the dead-letter topic as they are (the write-ahead log's kept dead
        letters, after the embedded broker lost its memory)."""
        try:
            acks = [
                await self._producer.send(
                    self._settings.dlq_topic, value=r.value, key=r.key, headers=r.headers
                )
                for r in records
            ]
            await asyncio.wait_for(asyncio.gather(*acks), timeout=SEND_TIMEOUT_S)
        except (KafkaError, TimeoutError) as e:
            raise BrokerUnavailable(f"Kafka did not acknowledge: {e!r}") from e

    async def ensure_topics(self) -> None:
        """Create the event and dead-letter topics where the broker lacks them, as at start: a
        broker that keeps its log in memory comes back from an outage without them. Waits no
        longer than a send (the admin client's own timeout is 40 s)."""
        try:
            await asyncio.wait_for(ensure_topics(self._bootstrap, self._settings), SEND_TIMEOUT_S)
        except TimeoutError as e:
            raise BrokerUnavailable(f"cannot create topics on {self._bootstrap}: no answer") from e

    async def dead_letter_topic_is_empty(self) -> bool:
        """True when the dead-letter topic holds no record (a broker that lost its log)."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, enable_auto_commit=False)
        try:
            await consumer.start()
            partitions = await self._producer.partitions_for(self._settings.dlq_topic)
            tps = [TopicPartition(self._settings.dlq_topic, p) for p in partitions]
            ends = await consumer.end_offsets(tps) if tps else {}
            return all(offset == 0 for offset in ends.values())
        except KafkaError as e:
            raise BrokerUnavailable(f"cannot read the dead-letter topic: {e!r}") from e
        finally:
            await consumer.stop()
