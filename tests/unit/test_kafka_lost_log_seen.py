"""How ``KafkaEventLog`` tells a new log from its acknowledgements (``_note``,
``lost_log_seen``), driven with the acknowledgements aiokafka hands back (``RecordMetadata``).
The real broker case: tests/integration/test_write_ahead_lost_topics.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiokafka.structs import RecordMetadata, TopicPartition

from hub.adapters.kafka import KafkaEventLog
from hub.settings import KafkaSettings

TOPIC = "t"


def acked(*offsets: tuple[int, int]) -> list[asyncio.Future[RecordMetadata]]:
    futures = []
    for partition, offset in offsets:
        f: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        f.set_result(RecordMetadata(TOPIC, partition, TopicPartition(TOPIC, partition), offset, -1, 0, 0))
        futures.append(f)
    return futures


@pytest.fixture
async def log() -> AsyncIterator[KafkaEventLog]:
    """Never started: nothing here reaches a broker."""
    made = KafkaEventLog("127.0.0.1:1", KafkaSettings(topic=TOPIC))
    yield made
    await made.stop()


def begin(log: KafkaEventLog) -> tuple[dict[int, int], int]:
    """What a publish takes before it sends (see ``publish_records``)."""
    return log._acked.copy(), log._logs


async def test_offsets_that_only_grow_are_one_log(log: KafkaEventLog) -> None:
    for n in range(5):
        log._note(*begin(log), acked((0, 2 * n), (1, n), (2, 3 * n + 1)))
    assert log.lost_log_seen() is False


async def test_an_acknowledgement_at_or_below_an_earlier_one_is_a_new_log_once(log: KafkaEventLog) -> None:
    log._note(*begin(log), acked((0, 7), (1, 9), (2, 5)))  # the old log
    in_flight = begin(log)  # a publish that began in the old log and ends after the new one is seen

    log._note(*begin(log), acked((2, 0)))  # the new log, seen in partition 2
    assert log.lost_log_seen() is True

    # The relay's sends to the other partitions land at 0 in the new log: below the old log's
    # 7 and 9, which are dropped with it, so that is not a new log again.
    log._note(*begin(log), acked((0, 0), (1, 0), (2, 1)))
    # Nor is the publish that began before, whatever its acknowledgements say.
    log._note(*in_flight, acked((1, 3)))
    log._note(*begin(log), acked((1, 1)))
    assert log.lost_log_seen() is False


async def test_a_publish_begun_before_an_acknowledgement_is_not_compared_with_it(log: KafkaEventLog) -> None:
    """Concurrent publishes: one that began before another's acknowledgement may land below it."""
    early = begin(log)
    log._note(*begin(log), acked((0, 10)))
    late = begin(log)
    log._note(*early, acked((0, 4)))  # sent before offset 10 was acknowledged: the same log
    log._note(*late, acked((0, 11)))
    assert log.lost_log_seen() is False
