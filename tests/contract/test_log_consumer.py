"""One contract, two logs: the in-memory twin and Kafka (the embedded broker) read alike.

What the projector relies on: events come back decoded, in log order per key, with their
positions; a record that is not a CloudEvent comes back with its reason and its raw bytes; a
new member of the group reads from the last commit; ``caught_up`` tells when everything
published has been read.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from hub.adapters.kafka import KafkaEventLog, ensure_topics
from hub.adapters.kafka_consumer import KafkaLogConsumer
from hub.adapters.memory.log import InMemoryEventLog
from hub.embedded import Infrastructure
from hub.ports import LogConsumer, LogRecord, RecordLog
from hub.settings import KafkaSettings
from schemas import CloudEvent
from schemas.bindings import KafkaRecord, to_kafka_record

SOURCE = "urn:nld:oin:00000001001234567000:systeem:contract"


@dataclass
class Log:
    """A log under test: where to publish, and how to make members of one group."""

    publisher: RecordLog
    member: Callable[[], LogConsumer]


@pytest.fixture(params=["memory", "kafka"])
async def log(request: pytest.FixtureRequest) -> AsyncIterator[Log]:
    if request.param == "memory":
        memory = InMemoryEventLog(partitions=3)
        yield Log(memory, memory.consumer)
        return
    infra: Infrastructure = request.getfixturevalue("infra")
    tag = uuid.uuid4().hex[:10]
    settings = KafkaSettings(
        bootstrap=infra.kafka_bootstrap,
        topic=f"contract.{tag}",
        dlq_topic=f"contract.{tag}.dlq",
        consumer_group=f"contract-{tag}",
        partitions=3,
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
    )
    await ensure_topics(infra.kafka_bootstrap, settings)
    kafka = KafkaEventLog(infra.kafka_bootstrap, settings)
    await kafka.start()
    try:
        # the hub wires it so: a write of this process wakes an idle member at once
        yield Log(kafka, lambda: KafkaLogConsumer(infra.kafka_bootstrap, settings, wake=kafka.written))
    finally:
        await kafka.stop()


def event(n: int, key: str) -> CloudEvent:
    return CloudEvent(
        specversion="1.0",
        id=f"e-{n}",
        source=SOURCE,
        type="nl.koppelhub.test.contract.v1",
        subject=key,
        time=datetime(2026, 11, 29, tzinfo=UTC),
        data={"n": n},
    )


async def read(consumer: LogConsumer, count: int, *, within: float = 20.0) -> list[LogRecord]:
    """Poll until ``count`` records arrived (or fail after ``within`` seconds)."""
    got: list[LogRecord] = []
    deadline = time.monotonic() + within
    while len(got) < count:
        assert time.monotonic() < deadline, f"read {len(got)} of {count} records"
        got += await consumer.poll(max_records=100, timeout_s=0.2)
    return got


async def test_events_come_back_decoded_in_order_per_key_with_their_positions(log: Log) -> None:
    events = [event(n, key) for n in range(12) for key in ("a", "b", "c")]
    await log.publisher.publish(events)
    consumer = log.member()
    await consumer.start()
    try:
        records = await read(consumer, len(events))
    finally:
        await consumer.stop()
    assert sorted(r.event.id for r in records if r.event) == sorted(e.id for e in events)
    for key in ("a", "b", "c"):
        mine = [r for r in records if r.event and r.event.subject == key]
        assert [r.event.data for r in mine if r.event] == [{"n": n} for n in range(12)]
        assert len({r.partition for r in mine}) == 1  # one key, one partition
        assert [r.offset for r in mine] == sorted(r.offset for r in mine)


async def test_a_record_that_is_no_cloudevent_comes_back_raw_with_its_reason(log: Log) -> None:
    await log.publisher.publish([event(1, "k")])
    await log.publisher.publish_records([KafkaRecord(b"k", b"not a cloudevent", [("x", b"y")])])
    await log.publisher.publish([event(2, "k")])
    consumer = log.member()
    await consumer.start()
    try:
        records = await read(consumer, 3)
    finally:
        await consumer.stop()
    bad = [r for r in records if r.event is None]
    assert [(r.key, r.value, r.headers) for r in bad] == [(b"k", b"not a cloudevent", (("x", b"y"),))]
    assert bad[0].error is not None and str(bad[0].error)
    assert [r.event.id for r in records if r.event] == ["e-1", "e-2"]


async def test_a_new_member_reads_from_the_last_commit(log: Log) -> None:
    await log.publisher.publish([event(n, "k") for n in range(6)])
    first = log.member()
    await first.start()
    try:
        records = await read(first, 6)
        done = records[2]
        assert await first.commit({done.partition: done.offset + 1})
    finally:
        await first.stop()
    second = log.member()
    await second.start()
    try:
        again = await read(second, 3)
    finally:
        await second.stop()
    assert [r.event.id for r in again if r.event] == ["e-3", "e-4", "e-5"]


async def test_a_member_commits_no_position_past_the_records_it_was_handed(log: Log) -> None:
    """Not a position it never read in its current assignment (one read before a rebalance, or
    of a log the broker lost): whoever owns the partition reads those records again."""
    await log.publisher.publish([event(n, "k") for n in range(3)])
    first = log.member()
    await first.start()
    try:
        p = (await read(first, 3))[0].partition
        assert await first.commit({p: 6}) is False
        assert await first.commit({p: 2}) is True
    finally:
        await first.stop()
    await log.publisher.publish([event(n, "k") for n in range(3, 6)])
    second = log.member()
    await second.start()
    try:
        again = await read(second, 4)
    finally:
        await second.stop()
    assert [r.event.id for r in again if r.event] == ["e-2", "e-3", "e-4", "e-5"]


async def test_caught_up_once_everything_published_is_read(log: Log) -> None:
    consumer = log.member()
    await consumer.start()
    try:
        await log.publisher.publish([event(n, key) for n in range(3) for key in ("a", "b")])
        got: list[LogRecord] = []
        deadline = time.monotonic() + 20
        while not (len(got) == 6 and await consumer.caught_up()):
            assert time.monotonic() < deadline, f"read {len(got)} of 6, never caught up"
            got += await consumer.poll(max_records=2, timeout_s=0.2)
        await log.publisher.publish([event(9, "a")])
        # Not caught up again until the new record is read.
        more = await read(consumer, 1)
        assert [r.event.id for r in more if r.event] == ["e-9"]
        assert await consumer.caught_up()
    finally:
        await consumer.stop()


async def test_poll_returns_nothing_when_nothing_arrives(log: Log) -> None:
    consumer = log.member()
    await consumer.start()
    try:
        assert await consumer.poll(max_records=10, timeout_s=0.3) == []
    finally:
        await consumer.stop()


async def idle(consumer: LogConsumer) -> None:
    """Poll until the member idles: the Kafka one stops fetching after a quiet while, until its
    next look (30 s away) or a wake-up. Twice: the first idle poll uses up the wake-up the
    test's own publish left."""
    deadline = time.monotonic() + 20
    for _ in range(2):
        assert await consumer.poll(max_records=10, timeout_s=0.5) == []
        while getattr(consumer, "fetching", False):
            assert time.monotonic() < deadline, "the member never idled"
            assert await consumer.poll(max_records=10, timeout_s=0.5) == []


async def test_wake_ends_the_poll_of_an_idle_member_at_once(log: Log) -> None:
    await log.publisher.publish([event(1, "a")])
    consumer = log.member()
    await consumer.start()
    try:
        await read(consumer, 1)
        await idle(consumer)
        polling = asyncio.create_task(consumer.poll(max_records=10, timeout_s=0.2))
        await asyncio.sleep(0.5)  # the Kafka member waits for its next look
        woken = time.monotonic()
        consumer.wake()
        assert await asyncio.wait_for(polling, 10) == []
        assert time.monotonic() - woken < 5, "the poll waited for the next look"
    finally:
        await consumer.stop()


async def test_seek_reads_a_partition_again_from_an_offset_and_leaves_others_alone(log: Log) -> None:
    await log.publisher.publish([event(n, key) for n in range(4) for key in ("a", "b")])
    consumer = log.member()
    await consumer.start()
    try:
        records = await read(consumer, 8)
        await idle(consumer)  # the seek must not wait for the next look
        a = [r for r in records if r.event and r.event.subject == "a"]
        # the projector's store lost what it applied of "a" from e-1 on; 99 is no partition here
        await consumer.seek({a[1].partition: a[1].offset, 99: 0})
        sought = time.monotonic()
        again = await read(consumer, 3)
        assert time.monotonic() - sought < 10, "read again only at the idle member's next look"
    finally:
        await consumer.stop()
    assert [r.event.id for r in again if r.event] == ["e-1", "e-2", "e-3"]
    assert {r.event.subject for r in again if r.event} == {"a"}  # "b"'s partition is not read again


async def test_parked_records_fill_the_dead_letter_topic_and_ensuring_the_topics_keeps_them(log: Log) -> None:
    """What the write-ahead log's relay asks of the log it wraps (``_Log`` in
    hub/adapters/postgres/write_ahead.py): park kept dead letters as they are, say whether the
    dead-letter topic is empty, and create missing topics without touching existing ones."""
    parking = log.publisher
    assert isinstance(parking, InMemoryEventLog | KafkaEventLog)
    await parking.ensure_topics()
    assert await parking.dead_letter_topic_is_empty() is True
    await parking.park_records([KafkaRecord(b"k", b"v", [("koppelhub_error", b"bad")])])
    await parking.ensure_topics()
    assert await parking.dead_letter_topic_is_empty() is False


async def test_a_log_that_lives_on_is_never_seen_as_lost(log: Log) -> None:
    """The relay also asks whether a publish's acknowledgement showed that the broker started
    a new log (``lost_log_seen``): never while the log lives, however often each partition is
    written to, record by record or in batches."""
    publisher = log.publisher
    assert isinstance(publisher, InMemoryEventLog | KafkaEventLog)
    for n in range(3):
        await publisher.publish_records([to_kafka_record(event(n, key)) for key in ("a", "b", "c")])
        await publisher.publish_records([to_kafka_record(event(100 + n * 40 + i, "d")) for i in range(40)])
    assert publisher.lost_log_seen() is False
