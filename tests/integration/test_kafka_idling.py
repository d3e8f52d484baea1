"""An idle projector member stops fetching (issue 17: idle CPU), yet misses nothing.

On the embedded broker: once quiet, a member sends no fetches; a write of its own process
wakes it at once, another process's write is found at its next look, and ``caught_up`` (the
drain) never trusts the high-water marks of a paused member.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from hub.adapters.kafka import KafkaEventLog, ensure_topics
from hub.adapters.kafka_consumer import KafkaLogConsumer, quiet_after_s
from hub.embedded import Infrastructure
from hub.ports import LogRecord
from hub.settings import KafkaSettings
from schemas import CloudEvent

SOURCE = "urn:nld:oin:00000001001234567000:systeem:idling"
NEVER_MS = 600_000  # a look so rare that only a wake-up or caught_up can explain a read


def settings_for(infra: Infrastructure, idle_poll_ms: int) -> KafkaSettings:
    tag = uuid.uuid4().hex[:10]
    return KafkaSettings(
        bootstrap=infra.kafka_bootstrap,
        topic=f"idling.{tag}",
        dlq_topic=f"idling.{tag}.dlq",
        consumer_group=f"idling-{tag}",
        partitions=3,
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
        idle_poll_ms=idle_poll_ms,
    )


@pytest.fixture
async def logs(infra: Infrastructure) -> AsyncIterator[tuple[KafkaEventLog, KafkaEventLog]]:
    """Two writers of one topic: ``own`` (this process, wakes the member) and ``other``."""
    settings = settings_for(infra, NEVER_MS)
    await ensure_topics(infra.kafka_bootstrap, settings)
    own = KafkaEventLog(infra.kafka_bootstrap, settings)
    other = KafkaEventLog(infra.kafka_bootstrap, settings)
    await own.start()
    await other.start()
    try:
        yield own, other
    finally:
        await own.stop()
        await other.stop()


def event(n: int) -> CloudEvent:
    return CloudEvent(
        specversion="1.0",
        id=f"e-{n}",
        source=SOURCE,
        type="nl.koppelhub.test.idling.v1",
        subject=f"k{n}",
        time=datetime(2026, 11, 29, tzinfo=UTC),
        data={"n": n},
    )


async def until_idle(consumer: KafkaLogConsumer, *, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while consumer.fetching:
        assert time.monotonic() < deadline, "the member never went idle"
        assert await consumer.poll(max_records=10, timeout_s=0.2) == []


async def read(consumer: KafkaLogConsumer, count: int, *, within: float = 20.0) -> list[LogRecord]:
    got: list[LogRecord] = []
    deadline = time.monotonic() + within
    while len(got) < count:
        assert time.monotonic() < deadline, f"read {len(got)} of {count} records"
        got += await consumer.poll(max_records=100, timeout_s=0.2)
    return got


async def test_an_idle_member_stops_fetching_and_a_write_of_its_process_wakes_it(
    infra: Infrastructure, logs: tuple[KafkaEventLog, KafkaEventLog]
) -> None:
    own, _ = logs
    consumer = KafkaLogConsumer(infra.kafka_bootstrap, own._settings, wake=own.written)
    await consumer.start()
    try:
        await until_idle(consumer)
        await own.publish([event(n) for n in range(3)])
        got = await read(consumer, 3)  # its next look is ten minutes away
        assert sorted(r.event.id for r in got if r.event) == ["e-0", "e-1", "e-2"]
        await until_idle(consumer)  # and quiet again afterwards
    finally:
        await consumer.stop()


async def test_an_idle_member_finds_another_process_write_at_its_next_look(
    infra: Infrastructure, logs: tuple[KafkaEventLog, KafkaEventLog]
) -> None:
    own, other = logs
    settings = own._settings.model_copy(update={"idle_poll_ms": 100})
    consumer = KafkaLogConsumer(infra.kafka_bootstrap, settings, wake=own.written)
    await consumer.start()
    try:
        await until_idle(consumer)
        await other.publish([event(7)])  # no wake-up reaches this member
        got = await read(consumer, 1)
        assert [r.event.id for r in got if r.event] == ["e-7"]
    finally:
        await consumer.stop()


async def test_caught_up_does_not_trust_an_idle_member_with_records_written_elsewhere(
    infra: Infrastructure, logs: tuple[KafkaEventLog, KafkaEventLog]
) -> None:
    own, other = logs
    consumer = KafkaLogConsumer(infra.kafka_bootstrap, own._settings, wake=own.written)
    await consumer.start()
    try:
        await until_idle(consumer)
        assert await consumer.caught_up() is False  # the marks are as old as the last fetch
        await until_idle(consumer)
        await other.publish([event(n) for n in range(4)])
        assert await consumer.caught_up() is False
        got: list[LogRecord] = []
        deadline = time.monotonic() + 20
        while not (len(got) == 4 and await consumer.caught_up()):
            assert time.monotonic() < deadline, f"read {len(got)} of 4, never caught up"
            got += await consumer.poll(max_records=100, timeout_s=0.2)
        assert sorted(r.event.id for r in got if r.event) == [f"e-{n}" for n in range(4)]
    finally:
        await consumer.stop()


async def test_stop_idling_ends_an_idle_poll_at_once_and_the_member_fetches_from_then_on(
    infra: Infrastructure, logs: tuple[KafkaEventLog, KafkaEventLog]
) -> None:
    own, other = logs
    consumer = KafkaLogConsumer(infra.kafka_bootstrap, own._settings, wake=own.written)
    await consumer.start()
    try:
        await until_idle(consumer)
        idle_poll = asyncio.create_task(consumer.poll(max_records=10, timeout_s=0.2))
        consumer.stop_idling()  # the projector's stop or drain; the next look is ten minutes away
        assert await asyncio.wait_for(idle_poll, 20) == []
        assert consumer.fetching
        await other.publish([event(9)])  # no wake-up: only a member that fetches finds it
        got = await read(consumer, 1)
        assert [r.event.id for r in got if r.event] == ["e-9"]
    finally:
        await consumer.stop()


async def test_a_member_whose_batch_took_longer_than_the_quiet_time_does_not_idle_at_its_next_poll(
    infra: Infrastructure, logs: tuple[KafkaEventLog, KafkaEventLog]
) -> None:
    own, other = logs
    consumer = KafkaLogConsumer(infra.kafka_bootstrap, own._settings, wake=own.written)
    await consumer.start()
    try:
        await own.publish([event(1)])
        await read(consumer, 1)
        await asyncio.sleep(quiet_after_s(own._settings) + 0.5)  # applying the batch took that long
        assert await consumer.poll(max_records=10, timeout_s=0.01) == []
        assert consumer.fetching  # what was written meanwhile without a wake-up is still fetched
        await other.publish([event(2)])
        assert [r.event.id for r in await read(consumer, 1) if r.event] == ["e-2"]
    finally:
        await consumer.stop()


async def test_partitions_a_rebalance_gives_an_idle_member_are_fetched_without_waiting_for_its_look(
    infra: Infrastructure, logs: tuple[KafkaEventLog, KafkaEventLog]
) -> None:
    own, other = logs
    first = KafkaLogConsumer(infra.kafka_bootstrap, own._settings, wake=own.written)
    second = KafkaLogConsumer(infra.kafka_bootstrap, own._settings)
    got: dict[str, list[LogRecord]] = {"first": [], "second": []}

    async def reading(name: str, consumer: KafkaLogConsumer) -> None:
        while sum(map(len, got.values())) < 30:
            got[name] += await consumer.poll(max_records=100, timeout_s=0.2)

    await first.start()
    readers: list[asyncio.Task[None]] = []
    try:
        await until_idle(first)  # it holds every partition; its next look is ten minutes away
        readers.append(asyncio.create_task(reading("first", first)))  # waits in its idle poll
        await other.publish([event(n) for n in range(30)])  # on every partition; no wake-up
        await second.start()  # a rebalance: each member gets some of the partitions
        readers.append(asyncio.create_task(reading("second", second)))
        done, _ = await asyncio.wait(readers, timeout=20, return_when=asyncio.FIRST_COMPLETED)
        assert done, f"read {len(got['first'])} + {len(got['second'])} of 30 records"
        ids = sorted(r.event.id for rs in got.values() for r in rs if r.event)
        assert ids == sorted(f"e-{n}" for n in range(30))
        assert got["first"]  # the idle member read its new partitions, not only the newcomer
    finally:
        for r in readers:
            r.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await second.stop()
        await first.stop()
