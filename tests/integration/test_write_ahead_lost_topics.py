"""The running hub's relay after a broker that came back without its topics or its log (Tansu in memory,
started again at the same address), on the real broker, aiokafka and PostgreSQL.

Such a broker creates a topic it lacks when it is sent to or looked at, with its own default
partition count (Tansu: 4) instead of the hub's. The relay of a refused publish sent there, and
looked at the dead-letter topic's end (to park the kept dead letters again in a topic that came
back empty): here that took about 10 s; in an external-broker restart test's run it waited 40 s
and failed (``write_ahead_prune_failed: cannot read the dead-letter topic``), so the pruner
relayed again every round and never pruned. The relay now creates the topics first, as at start."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace

from aiokafka.admin import AIOKafkaAdminClient

from hub.adapters.kafka import KafkaEventLog, ensure_topics
from hub.adapters.postgres.engine import create_engine
from hub.adapters.postgres.write_ahead import PRUNE_SECONDS, WriteAheadEventLog
from hub.embedded import EmbeddedBroker, Infrastructure
from hub.errors import BrokerUnavailable
from hub.settings import KafkaSettings
from schemas.bindings import to_kafka_record
from tests.integration.test_kafka_idling import NEVER_MS, event, settings_for


async def test_a_relay_after_the_broker_lost_its_topics_creates_them_and_parks_the_kept_dead_letters(
    tmp_path: Path, infra: Infrastructure, database_url: str
) -> None:
    async with _own_broker(tmp_path, infra, database_url) as (broker, log, wal, settings):
        await wal.publish([event(1)])  # accepted, not projected: relayed again
        parked = to_kafka_record(event(2))
        origin = SimpleNamespace(topic=settings.topic, partition=0, offset=7)
        await wal.dead_letter(parked.key, parked.value, parked.headers, ValueError("bad"), origin)

        _restart_empty(broker)  # no topics
        wal._unsent = True  # what a publish refused meanwhile leaves (its own test: group commit)
        # A publish that reaches the new broker before the relay (the API goes on taking them)
        # has Tansu create the event topic on its own terms; the relay creates it again.
        await log.publish([event(3)])

        assert await asyncio.wait_for(wal.relay_refused(), timeout=20) == 1  # event 1, not 3

        admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
        await admin.start()
        try:
            described = await admin.describe_topics([settings.topic, settings.dlq_topic])
        finally:
            await admin.close()
        # Before: the broker's own partition count (4), and up to 40 s to get there.
        assert {t["topic"]: (t["error_code"], len(t["partitions"])) for t in described} == {
            settings.topic: (0, settings.partitions),
            settings.dlq_topic: (0, settings.partitions),
        }
        assert await log.dead_letter_topic_is_empty() is False  # the kept dead letter, parked again


async def test_a_broker_that_lost_its_log_without_refusing_a_publish_gets_what_it_held_relayed(
    tmp_path: Path, infra: Infrastructure, database_url: str
) -> None:
    """No publish was refused: the broker was started again, empty, between two publishes, and
    the producer reached the new one within its send. The second publish's acknowledgement lies
    at or below an offset acknowledged before it was sent: a new log. The relay then sends what
    the lost log held and the projector had not recorded (before, it waited for the next start)."""
    async with _own_broker(tmp_path, infra, database_url) as (broker, log, wal, settings):
        await wal.publish([event(n) for n in range(1, 10)])  # accepted, never projected here
        await wal.publish([event(n) for n in range(10, 19)])
        assert log.lost_log_seen() is False  # the same log: each acknowledgement above the last

        _restart_empty(broker)
        # As `run` does once its broker is back (broker_back): the topics first. Left to Tansu
        # to make on the send, the new broker at times answered "not leader" until the send
        # timed out, and the premise below (nothing refused) did not hold.
        await ensure_topics(broker.bootstrap, settings)
        # One record, acknowledged by the new broker in a partition (2 of 3, or 0 of the 4 that
        # Tansu may give a topic it makes on a send) that had offsets in the lost log.
        await wal.publish([event(19)])
        assert wal._unsent is False  # nothing was refused

        # Every row the projector has not recorded: the 18 the lost log held, and the one the
        # new log has already (absorbed by the projector's dedupe). Relayed as the pruner does,
        # every PRUNE_SECONDS until it goes through: for a second or two Tansu's memory store
        # refuses this producer's sends to a partition it has written to since the restart
        # ("UnknownError"; the store logs that the batch's object already exists).
        assert await asyncio.wait_for(_relayed_by_the_pruner(wal), timeout=30) == 19
        # Seen once, relayed once: the relay's own sends to the other partitions (their offsets
        # of the lost log kept, they would look like a new log again) are not taken for one.
        assert log.lost_log_seen() is False


async def _relayed_by_the_pruner(wal: WriteAheadEventLog) -> int:
    while True:
        try:
            return await wal.relay_refused()
        except BrokerUnavailable:
            await asyncio.sleep(PRUNE_SECONDS)


@asynccontextmanager
async def _own_broker(
    tmp_path: Path, infra: Infrastructure, database_url: str
) -> AsyncIterator[tuple[EmbeddedBroker, KafkaEventLog, WriteAheadEventLog, KafkaSettings]]:
    """A Tansu of this test's own (it is killed and started again), its topics created as at
    start, and the write-ahead log in front of it."""
    broker = EmbeddedBroker(tmp_path / "broker.json", tmp_path / "broker.log")
    bootstrap = broker.start()
    engine = create_engine(database_url, pool_size=2)
    settings = settings_for(infra, NEVER_MS).model_copy(update={"bootstrap": bootstrap})
    log = KafkaEventLog(bootstrap, settings)
    wal = WriteAheadEventLog(engine, log)
    try:
        await ensure_topics(bootstrap, settings)
        await log.start()
        yield broker, log, wal, settings
    finally:
        await log.stop()
        await wal.close()
        await engine.dispose()
        broker.stop()


def _restart_empty(broker: EmbeddedBroker) -> None:
    """Kill the broker and start it again at the same port, with nothing in it."""
    assert broker._process is not None
    broker._process.kill()
    broker._process.wait()
    assert broker.restart()
