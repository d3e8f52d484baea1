"""What the projector's PostgreSQL transaction writes, pinned where its statements were made
cheaper (issue 17): archive positions taken in one statement per batch, the dedupe of a
duplicate inside one batch and of a redelivered batch, and the ANALYZE schedule of the outbox.
What the projection decides is the contract suite's (tests/contract); this file pins the
PostgreSQL adapter's own bookkeeping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

import hub.adapters.postgres.projection as projection
from hub.adapters.postgres.engine import create_engine
from hub.adapters.postgres.projection import AnalyzeSchedule, PostgresProjectionStore
from hub.adapters.postgres.subscriptions import PostgresSubscriptionStore
from hub.ports import LoggedEvent
from hub.services.projection import apply_events
from tests.contract.delivery_harness import event


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=2, pre_ping=False)
    await PostgresSubscriptionStore(engine).create(
        sink="https://sink.example/hook", protocol="HTTP", source=None, types=None, filters=[],
        headers={}, config={}, secret="whsec_" + "A" * 32,
    )  # fmt: skip
    try:
        yield engine
    finally:
        await engine.dispose()


async def _rows(engine: AsyncEngine, sql: str) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(sql))).all())


async def test_archive_positions_follow_the_log_within_a_batch_and_a_duplicate_in_it_is_archived_once(
    engine: AsyncEngine,
) -> None:
    events = [event(f"key-{n % 3}", n) for n in range(7)]
    batch = [LoggedEvent(e, 0, offset) for offset, e in enumerate(events)]
    batch.append(LoggedEvent(events[2], 0, 7))  # the same source+id again, later in the batch

    done = await apply_events(PostgresProjectionStore(engine), batch, None)

    archived = await _rows(engine, "SELECT seq, event_id, kafka_offset FROM event_archive ORDER BY seq")
    assert [(r.event_id, r.kafka_offset) for r in archived] == [(e.id, n) for n, e in enumerate(events)]
    assert len({r.seq for r in archived}) == 7
    marks = await _rows(engine, "SELECT event_id, archive_seq FROM processed_events")
    assert sorted((m.archive_seq, m.event_id) for m in marks) == [(r.seq, r.event_id) for r in archived]
    outbox = await _rows(engine, "SELECT archive_seq FROM deliveries ORDER BY archive_seq")
    assert [d.archive_seq for d in outbox] == [r.seq for r in archived]
    assert done.new == 7


async def test_a_redelivered_batch_takes_no_new_rows_and_only_the_new_events_of_a_mixed_one_are_archived(
    engine: AsyncEngine,
) -> None:
    store = PostgresProjectionStore(engine)
    first = [LoggedEvent(event("k", n), 0, n) for n in range(3)]
    await apply_events(store, first, None)

    again = await apply_events(store, first, None)
    fresh = [LoggedEvent(event("k", 9), 0, 3), LoggedEvent(event("k", 10), 0, 4)]
    mixed = await apply_events(store, [first[1], fresh[0], first[2], fresh[1]], None)

    assert (again.new, mixed.new) == (0, 2)
    archived = await _rows(engine, "SELECT seq, event_id FROM event_archive ORDER BY kafka_offset")
    assert [r.event_id for r in archived] == [e.event.id for e in first + fresh]
    assert [r.seq for r in archived] == sorted(r.seq for r in archived)


def test_the_outbox_is_analysed_every_few_thousand_rows_while_young_then_as_it_grows() -> None:
    schedule = AnalyzeSchedule()
    assert not schedule.added(projection.ANALYZE_EVERY - 1)
    assert schedule.added(1)
    schedule.analysed(projection.ANALYZE_EVERY)
    assert schedule.added(projection.ANALYZE_EVERY)  # young: every ANALYZE_EVERY rows

    schedule.analysed(400_000)  # grown: after a quarter of what the statistics counted
    assert not schedule.added(99_999)
    assert schedule.added(1)


async def test_the_store_analyses_the_outbox_and_keeps_the_row_count_the_statistics_saw(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(projection, "ANALYZE_EVERY", 4)
    store = PostgresProjectionStore(engine)

    await apply_events(store, [LoggedEvent(event("k", n), 0, n) for n in range(3)], None)
    assert store.analyze.counted == 0  # three rows: not yet
    await apply_events(store, [LoggedEvent(event("k", n), 0, n) for n in range(3, 5)], None)

    assert (store.analyze.counted, store.analyze.unanalysed) == (5, 0)
    [analysed] = await _rows(engine, "SELECT reltuples FROM pg_class WHERE relname = 'deliveries'")
    assert analysed.reltuples == 5
