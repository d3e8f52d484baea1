"""A member whose broker lost its log (Tansu in memory, started again at the same address) never
commits its positions of the old log into the new one, on the real broker and aiokafka.

Such a member rejoins its group in the new broker; a position it commits there lies past the
new log's end, and the group then skips every record below it (a probe on Tansu: a new member
reads nothing until the log grows past it). A CI run lost acknowledged events so. The member
now commits no position past the records it was handed in its current assignment, and gives up
a commit when a rebalance begins under it (``hub.adapters.kafka_membership.Membership``)."""

from __future__ import annotations

from pathlib import Path

from hub.adapters.kafka import KafkaEventLog, ensure_topics
from hub.adapters.kafka_consumer import KafkaLogConsumer
from hub.embedded import EmbeddedBroker, Infrastructure
from hub.settings import KafkaSettings
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

            # The member rejoins the group in the new broker and reads the new log from its start
            # (these three exist only there): it has a new assignment now.
            assert sorted(r.event.id for r in await read(member, 3, within=60) if r.event) == [
                "e-100",
                "e-101",
                "e-102",
            ]
            # Its position of the old log is refused; before, the broker took it.
            assert await member.commit({0: 20}) is False
            assert await member.commit({0: 3}) is True  # what it did read in the new log
        finally:
            await member.stop()

        # The group's next member goes on from 3: nothing of the new log is skipped.
        await publish(bootstrap, settings, range(200, 202))
        fresh = KafkaLogConsumer(bootstrap, settings)
        fresh.stop_idling()
        await fresh.start()
        try:
            assert [r.event.id for r in await read(fresh, 2, within=60) if r.event] == ["e-200", "e-201"]
        finally:
            await fresh.stop()
    finally:
        broker.stop()
