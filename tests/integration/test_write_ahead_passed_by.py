"""Rows the projector read past without projecting them are sent again by the write-ahead log
(``hub.adapters.postgres.write_ahead_overdue``), on the real broker, aiokafka and PostgreSQL.

A member that kept a position of a log the broker lost reads the new log from there, and skips
the records below it (a CI run of ``tests/e2e/test_restarts.py`` lost 14 acknowledged events so:
relayed into the new log, still in the write-ahead log 90 s later). Here the group's commits play
that member: they lie past records the projector never recorded."""

from __future__ import annotations

from datetime import datetime

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.adapters.kafka import KafkaEventLog, ensure_topics
from hub.adapters.kafka_operators import KafkaLogInspector
from hub.adapters.postgres import write_ahead_overdue
from hub.adapters.postgres.engine import create_engine
from hub.adapters.postgres.write_ahead import WriteAheadEventLog
from hub.adapters.postgres.write_ahead_overdue import OverdueRows
from hub.embedded import Infrastructure
from hub.ports.operators import LogStatus, PartitionLag
from hub.settings import KafkaSettings
from tests.integration.test_kafka_idling import NEVER_MS, event, settings_for


async def test_rows_the_projector_read_past_are_sent_again_once_its_group_has_committed_past_them(
    infra: Infrastructure, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(write_ahead_overdue, "LOOK_EVERY_S", 0.0)
    settings = settings_for(infra, NEVER_MS)
    assert settings.bootstrap
    engine = create_engine(database_url, pool_size=2)
    log = KafkaEventLog(settings.bootstrap, settings)
    inspector = KafkaLogInspector(settings.bootstrap, settings, log.producer)
    wal = WriteAheadEventLog(engine, log, inspector=inspector)
    passed_by = wal._passed_by
    assert passed_by is not None
    try:
        await ensure_topics(settings.bootstrap, settings)
        await log.start()
        await wal.publish([event(n) for n in range(1, 7)])
        async with engine.begin() as conn:  # 1-3 projected; all six accepted a minute ago
            await conn.execute(
                text("INSERT INTO processed_events (source, event_id, archive_seq) VALUES (:s, :i, 0)"),
                [{"s": event(n).source, "i": event(n).id} for n in (1, 2, 3)],
            )
            await conn.execute(text("UPDATE event_wal SET accepted_at = now() - interval '1 minute'"))

        assert await passed_by.look() == 0
        assert passed_by._mark is not None  # overdue: the ends of the log are noted
        assert await passed_by.look() == 0  # the group has not read that far: a backlog, not loss
        status = await inspector.status()  # the true ends (ListOffsets' are not: INFRA.md)
        await _commit(settings, {p.partition: p.end_offset for p in status.partitions})
        assert await passed_by.look() == 3  # read past 4, 5 and 6 without projecting them

        again = await _records_after_the_commits(settings)
        assert sorted(again) == ["e-4", "e-5", "e-6"]
        assert await passed_by.look() == 0  # still overdue: noted again, with the new ends
        assert await passed_by.look() == 0  # sent again once: the group has not read them yet
    finally:
        await inspector.close()
        await log.stop()
        await wal.close()
        await engine.dispose()


async def test_a_partition_that_ends_below_its_end_noted_is_a_lost_log_for_the_refused_relay(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The log was lost again between two looks: nothing is relayed here, the refused relay
    (topics first, then every row not projected) is told to run."""
    monkeypatch.setattr(write_ahead_overdue, "LOOK_EVERY_S", 0.0)
    engine = create_engine(database_url, pool_size=2)
    relayed: list[tuple[int, datetime]] = []
    inspector, lost = _Inspector({0: (40, 10), 1: (7, 7)}), []
    overdue = OverdueRows(engine, inspector, _relay_into(relayed), lambda: lost.append(True))
    try:
        await _overdue_row(engine)
        await overdue.look()
        inspector.partitions = {0: (3, 0), 1: (7, 7)}  # partition 0 starts again from 0
        assert await overdue.look() == 0
        assert (lost, relayed, overdue._mark) == ([True], [], None)
    finally:
        await engine.dispose()


async def test_a_broker_that_names_no_partition_yet_gets_no_mark(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Back without its topics: with no end to wait for, every overdue row would be relayed at
    once (and the topic made with the broker's own partition count)."""
    monkeypatch.setattr(write_ahead_overdue, "LOOK_EVERY_S", 0.0)
    engine = create_engine(database_url, pool_size=2)
    relayed: list[tuple[int, datetime]] = []
    inspector = _Inspector({})
    overdue = OverdueRows(engine, inspector, _relay_into(relayed), lambda: None)
    try:
        await _overdue_row(engine)
        assert await overdue.look() == 0
        assert overdue._mark is None
        inspector.partitions = {0: (1, 0)}
        await overdue.look()
        assert overdue._mark is not None and relayed == []
    finally:
        await engine.dispose()


class _Inspector:
    """The log as the inspector's status shows it: per partition, (end, committed)."""

    def __init__(self, partitions: dict[int, tuple[int, int]]) -> None:
        self.partitions = partitions

    async def status(self) -> LogStatus:
        lags = tuple(PartitionLag(p, end, committed) for p, (end, committed) in self.partitions.items())
        return LogStatus("t", "g", "Stable", lags, (), "t.dlq", 0)


def _relay_into(relayed: list[tuple[int, datetime]]) -> write_ahead_overdue.RelayRows:
    async def relay(*, through: int, cutoff: datetime) -> int:
        relayed.append((through, cutoff))
        return 1

    return relay


async def _overdue_row(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO event_wal (source, event_id, key, value, header_names, header_values,"
                " accepted_at) VALUES ('urn:x', 'e-1', NULL, NULL, '{}', '{}', now() - interval '1 hour')"
            )
        )


async def _commit(settings: KafkaSettings, positions: dict[int, int]) -> None:
    """Commit ``positions`` (per partition) for the projector's group."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap, group_id=settings.consumer_group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(settings.topic, p) for p in positions])
        await consumer.commit({TopicPartition(settings.topic, p): o for p, o in positions.items()})
    finally:
        await consumer.stop()


async def _records_after_the_commits(settings: KafkaSettings) -> list[str]:
    """The ids of the records from the group's commits to the end of the log."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap, group_id=settings.consumer_group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(settings.topic, p) for p in range(settings.partitions)]
        consumer.assign(tps)
        ids: list[str] = []
        while len(ids) < 3:
            batch = await consumer.getmany(timeout_ms=5000)
            assert batch, f"only {ids} after the commits"
            ids += [dict(r.headers)["ce_id"].decode() for rs in batch.values() for r in rs]
        return ids
    finally:
        await consumer.stop()
