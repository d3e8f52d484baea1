"""A member whose broker lost its log (Tansu in memory, started again at the same address) never
commits its positions of the old log into the new one, on the real broker and aiokafka.

Such a member rejoins its group in the new broker; a position it commits there lies past the
new log's end, and the group then skips every record below it (a probe on Tansu: a new member
reads nothing until the log grows past it). A CI run lost acknowledged events so. The member
now commits no position past the records it was handed in its current assignment, and gives up
a commit when a rebalance begins under it (``hub.adapters.kafka_membership.Membership``)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from hub.adapters.kafka import KafkaEventLog, ensure_topics
from hub.adapters.kafka_consumer import KafkaLogConsumer
from hub.embedded import EmbeddedBroker, Infrastructure
from hub.settings import KafkaSettings
from schemas.bindings import to_kafka_record
from tests.integration.test_kafka_idling import NEVER_MS, event, read, settings_for


async def publish(bootstrap: str, settings: KafkaSettings, events: range) -> None:
    writer = KafkaEventLog(bootstrap, settings)
    await writer.start()
    try:
        await writer.publish([event(n) for n in events])
    finally:
        await writer.stop()


async def test_a_member_never_commits_its_positions_of_a_lost_log_into_the_broker_started_again(
    tmp_path: Path,
) -> None:
    broker = EmbeddedBroker(tmp_path / "broker.json", tmp_path / "broker.log")
    bootstrap = broker.start()
    try:
        infra = Infrastructure(kafka_bootstrap=bootstrap, database_url="unused")
        settings = settings_for(infra, NEVER_MS).model_copy(update={"partitions": 1})
        await ensure_topics(bootstrap, settings)
        await publish(bootstrap, settings, range(20))
        member = KafkaLogConsumer(bootstrap, settings)
        member.stop_idling()
        await member.start()
        try:
            assert len(await read(member, 20)) == 20  # applied, not yet committed: position 20

            assert broker._process is not None
            broker._process.kill()
            broker._process.wait()
            assert broker.restart()  # same port, empty
            await ensure_topics(bootstrap, settings)
            await publish(bootstrap, settings, range(100, 103))

            # The member reads the new log from its start (these three exist only there): it
            # rejoined the group in the new broker, or found its position past the new log's end.
            assert sorted(r.event.id for r in await read(member, 3, within=60) if r.event) == [
                "e-100",
                "e-101",
                "e-102",
            ]
            # Its position of the old log is refused; before, the broker took it.
            assert await member.commit({0: 20}) is False
        finally:
            await member.stop()

        # The group's next member skips nothing of the new log.
        await publish(bootstrap, settings, range(200, 202))
        fresh = KafkaLogConsumer(bootstrap, settings)
        fresh.stop_idling()
        await fresh.start()
        try:
            ids = [r.event.id for r in await read(fresh, 2, within=60) if r.event]
            while "e-201" not in ids:
                ids += [r.event.id for r in await read(fresh, 1, within=60) if r.event]
            assert ids[-2:] == ["e-200", "e-201"] and ids[0] in ("e-100", "e-200")
        finally:
            await fresh.stop()
    finally:
        broker.stop()


async def test_a_member_whose_position_lies_past_the_end_of_its_partition_reads_it_from_the_start(
    infra: Infrastructure,
) -> None:
    """As when the broker lost its log and the member kept its old position, or one was
    committed into the new log: Kafka answers such a fetch out of range and the member starts
    from the earliest offset; Tansu answers nothing. A CI run of the external-broker restart
    test left 14 acknowledged events unprojected so: in the write-ahead log, never archived."""
    settings = settings_for(infra, NEVER_MS).model_copy(update={"partitions": 1})
    await ensure_topics(infra.kafka_bootstrap, settings)
    await publish(infra.kafka_bootstrap, settings, range(3))
    # A position of an old, longer log in the group's commits (a raw client: the hub's own
    # member refuses to commit past what it read).
    raw = AIOKafkaConsumer(bootstrap_servers=infra.kafka_bootstrap, group_id=settings.consumer_group)
    await raw.start()
    try:
        tp = TopicPartition(settings.topic, 0)
        raw.assign([tp])
        await raw.commit({tp: OffsetAndMetadata(20, "")})
    finally:
        await raw.stop()

    member = KafkaLogConsumer(infra.kafka_bootstrap, settings)
    member.stop_idling()
    await member.start()
    try:  # before: nothing, until the log grew past offset 20
        assert [r.event.id for r in await read(member, 3) if r.event] == ["e-0", "e-1", "e-2"]
    finally:
        await member.stop()


async def test_a_partition_past_its_end_is_read_from_the_start_while_records_flow_on_another(
    infra: Infrastructure,
) -> None:
    """The same, with records flowing on the member's other partition all the while: before, the
    look for a lost log ran only on a poll that returned nothing, so the lost partition waited
    until the others were drained (a busy hub: for as long as it stayed busy)."""
    settings = settings_for(infra, NEVER_MS).model_copy(update={"partitions": 2})
    await ensure_topics(infra.kafka_bootstrap, settings)
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap)
    await producer.start()

    async def send(n: int, partition: int) -> None:
        record = to_kafka_record(event(n))
        await producer.send_and_wait(
            settings.topic, record.value, key=record.key, headers=record.headers, partition=partition
        )

    async def flow() -> None:  # partition 1 never runs dry while the member reads
        for n in itertools.count(1_000):
            await send(n, 1)
            await asyncio.sleep(0.005)

    flowing: asyncio.Task[None] | None = None
    try:
        for n in range(3):
            await send(n, 0)
        raw = AIOKafkaConsumer(bootstrap_servers=infra.kafka_bootstrap, group_id=settings.consumer_group)
        await raw.start()
        try:  # partition 0 holds 3 records; the group's position there is 20
            tp = TopicPartition(settings.topic, 0)
            raw.assign([tp])
            await raw.commit({tp: OffsetAndMetadata(20, "")})
        finally:
            await raw.stop()
        flowing = asyncio.create_task(flow())
        member = KafkaLogConsumer(infra.kafka_bootstrap, settings)
        member.stop_idling()
        await member.start()
        try:
            ids: list[str] = []
            deadline = time.monotonic() + 30
            while not {"e-0", "e-1", "e-2"} <= set(ids):
                assert time.monotonic() < deadline, f"partition 0 unread after {len(ids)} records"
                # a long wait per poll: as partition 1 keeps getting records, none returns empty
                got = await member.poll(max_records=20, timeout_s=10)
                assert got, f"a poll returned nothing after {len(ids)} records"
                ids += [r.event.id for r in got if r.event]
        finally:
            await member.stop()
    finally:
        if flowing is not None:
            flowing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flowing
        await producer.stop()
