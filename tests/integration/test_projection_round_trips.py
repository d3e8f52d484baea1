"""The projector's transaction in round trips (issue 17: latency, CPU per event), and what its
cached list of subscriptions must still see.

A batch of plain events (no landscape events) is one autocommitted statement when the
subscriptions' version is the one the store read last (:data:`projection_sql.AT_ONCE`), and
writes nothing when it is not (then the transaction below). In a transaction, a batch of a few
events takes its archive positions, dedupe marks, archive rows and the subscriptions' version in
one statement, reads the subscriptions only when that version changed, and queues its outbox
rows with their NOTIFY in one more; larger batches write the archive and outbox rows by ``COPY``
(not a SQLAlchemy statement, so not counted here). The cache must never hide a subscription
created, changed or deleted before the next batch: each test below changes one between two
batches and looks at the second batch's outbox rows. What the projection decides is the
contract suite's."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

import hub.adapters.postgres.projection as projection
from hub.adapters.postgres.engine import create_engine, libpq_url
from hub.adapters.postgres.outbox import PostgresOutbox
from hub.adapters.postgres.projection import PostgresProjectionStore
from hub.adapters.postgres.subscriptions import PostgresSubscriptionStore
from hub.ports import LoggedEvent, NewDelivery
from hub.services.projection import apply_events
from tests.contract.delivery_harness import event


@pytest.fixture
async def pg(database_url: str) -> AsyncIterator[dict[str, Any]]:
    engine = create_engine(database_url, pool_size=2, pre_ping=False)
    statements: list[str] = []
    modes: list[str | None] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)
        modes.append(conn.get_execution_options().get("isolation_level"))

    sa_event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        yield {"engine": engine, "statements": statements, "modes": modes, "url": database_url}
    finally:
        await engine.dispose()


async def _subscribe(engine: AsyncEngine, types: list[str] | None = None) -> uuid.UUID:
    created = await PostgresSubscriptionStore(engine).create(
        sink="https://sink.example/hook", protocol="HTTP", source=None, types=types, filters=[],
        headers={}, config={}, secret="whsec_" + "A" * 32,
    )  # fmt: skip
    return created.id


async def _project(store: PostgresProjectionStore, *keys: str, offset: int) -> list[str]:
    events = [event(k, offset + n) for n, k in enumerate(keys)]
    await apply_events(store, [LoggedEvent(e, 0, offset + n) for n, e in enumerate(events)], None)
    return [e.id for e in events]


async def _receivers(engine: AsyncEngine, event_id: str) -> set[uuid.UUID]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT subscription_id FROM deliveries WHERE event_id = :id"), {"id": event_id}
        )
        return {r.subscription_id for r in rows}


async def test_a_batch_of_plain_events_whose_subscriptions_did_not_change_is_one_autocommitted_statement(
    pg: dict[str, Any],
) -> None:
    engine, statements = pg["engine"], pg["statements"]
    await _subscribe(engine)
    store = PostgresProjectionStore(engine)
    await _project(store, "a", "b", offset=0)  # reads the subscriptions once
    statements.clear()
    pg["modes"].clear()

    [first, second] = await _project(store, "a", "c", offset=2)

    assert len(statements) == 1, statements
    assert all(
        t in statements[0]
        for t in ("processed_events", "INSERT INTO event_archive", "INSERT INTO deliveries", "pg_notify")
    )
    assert pg["modes"] == ["AUTOCOMMIT"]
    assert len(await _receivers(engine, first)) == len(await _receivers(engine, second)) == 1


async def test_a_transactions_batch_sends_a_statement_before_its_archive_and_one_after(
    pg: dict[str, Any],
) -> None:
    engine, statements = pg["engine"], pg["statements"]
    sid = await _subscribe(engine)
    store = PostgresProjectionStore(engine)
    await _project(store, "a", "b", offset=0)  # reads the subscriptions once
    statements.clear()

    async with store.transaction() as uow:
        archived = await uow.record_new([LoggedEvent(event(k, 2 + n), 0, 2 + n) for n, k in enumerate("ac")])
        assert [s.id for s in await uow.subscriptions()] == [sid]
        await uow.add_deliveries([NewDelivery(sid, a.seq, a.event.id, "k") for a in archived])

    assert len(statements) == 2, statements  # marks, archive, version; the outbox rows with their NOTIFY
    assert all(
        t in statements[0] for t in ("processed_events", "INSERT INTO event_archive", "FROM subscriptions")
    )
    assert "INSERT INTO deliveries" in statements[1] and "pg_notify" in statements[1]
    assert [len(await _receivers(engine, a.event.id)) for a in archived] == [1, 1]


async def test_a_subscription_created_between_two_batches_receives_the_second(pg: dict[str, Any]) -> None:
    engine = pg["engine"]
    old = await _subscribe(engine)
    store = PostgresProjectionStore(engine)
    [before] = await _project(store, "k", offset=0)

    new = await _subscribe(engine)
    [after] = await _project(store, "k", offset=1)

    assert await _receivers(engine, before) == {old}
    assert await _receivers(engine, after) == {old, new}


async def test_a_subscription_deleted_between_two_batches_gets_no_row_of_the_second_which_commits(
    pg: dict[str, Any],
) -> None:
    engine = pg["engine"]
    kept, deleted = await _subscribe(engine), await _subscribe(engine)
    store = PostgresProjectionStore(engine)
    await _project(store, "k", offset=0)

    await PostgresSubscriptionStore(engine).delete(deleted)
    [after] = await _project(store, "k", offset=1)  # a stale list: a foreign-key error here

    assert await _receivers(engine, after) == {kept}


async def test_a_subscription_whose_types_changed_between_two_batches_is_matched_by_its_new_types(
    pg: dict[str, Any],
) -> None:
    engine = pg["engine"]
    kept, narrowed = await _subscribe(engine), await _subscribe(engine)
    store = PostgresProjectionStore(engine)
    [before] = await _project(store, "k", offset=0)

    await PostgresSubscriptionStore(engine).update(narrowed, {"types": ["nl.example.anders"]})
    [after] = await _project(store, "k", offset=1)

    assert await _receivers(engine, before) == {kept, narrowed}
    assert await _receivers(engine, after) == {kept}


async def test_a_delete_waits_for_the_outbox_rows_of_a_batch_that_read_the_subscriptions_version(
    pg: dict[str, Any],
) -> None:
    """The version and the lock come from one statement: a subscription in the cached list
    cannot be deleted between that statement and the batch's outbox rows (a foreign-key error
    that would park the batch), and its DELETE then removes those rows too."""
    engine = pg["engine"]
    sid = await _subscribe(engine)
    store = PostgresProjectionStore(engine)
    await _project(store, "k", offset=0)
    async with await psycopg.AsyncConnection.connect(libpq_url(pg["url"]), autocommit=True) as other:
        await other.execute("SET lock_timeout = '200ms'")
        async with store.transaction() as uow:
            [archived] = await uow.record_new([LoggedEvent(event("k", 1), 0, 1)])
            with pytest.raises(psycopg.errors.LockNotAvailable):
                await other.execute("DELETE FROM subscriptions WHERE id = %s", (sid,))
            assert [s.id for s in await uow.subscriptions()] == [sid]
            await uow.add_deliveries([NewDelivery(sid, archived.seq, archived.event.id, "k")])
        await other.execute("DELETE FROM subscriptions WHERE id = %s", (sid,))
    assert await _receivers(engine, archived.event.id) == set()


async def test_more_outbox_rows_than_one_statement_takes_go_in_by_copy_and_still_wake_the_dispatchers(
    pg: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, statements = pg["engine"], pg["statements"]
    monkeypatch.setattr(projection, "QUEUE_IN_ONE_STATEMENT", 2)
    subs = {await _subscribe(engine), await _subscribe(engine)}
    store = PostgresProjectionStore(engine)
    await _project(store, "k", offset=0)
    statements.clear()

    ids = await _project(store, "k", "l", offset=1)  # four rows: by COPY, then the NOTIFY
    sent = list(statements)

    assert [await _receivers(engine, i) for i in ids] == [subs, subs]
    assert "INSERT INTO deliveries" not in " ".join(sent)
    assert "pg_notify" in sent[-1]


async def test_a_subscription_paused_between_two_batches_keeps_its_rows_queued_and_none_is_claimed(
    pg: dict[str, Any],
) -> None:
    engine = pg["engine"]
    active, paused = await _subscribe(engine), await _subscribe(engine)
    store = PostgresProjectionStore(engine)
    await _project(store, "first", offset=0)
    outbox = PostgresOutbox(engine)
    await outbox.claim(10, 60.0)  # the first batch's rows (another key), out of the way

    await PostgresSubscriptionStore(engine).update(paused, {}, enabled=False)
    [after] = await _project(store, "k", offset=1)

    assert await _receivers(engine, after) == {active, paused}  # paused: its deliveries stay queued
    assert [(c.subscription_id, c.event_id) for c in await outbox.claim(10, 60.0)] == [(active, after)]


async def test_two_members_transactions_do_not_wait_for_each_other_on_the_subscriptions(
    pg: dict[str, Any],
) -> None:
    """Each takes FOR KEY SHARE, which only a DELETE (or a key change) waits for. The list was
    read FOR NO KEY UPDATE before (SQLAlchemy's ``key_share=True`` alone), which one member
    held until its commit, so the members' transactions queued behind each other."""
    engine = pg["engine"]
    sid = await _subscribe(engine)
    other_member = create_engine(pg["url"], pool_size=1, pre_ping=False)
    sa_event.listen(
        other_member.sync_engine, "connect", lambda dbapi, _: dbapi.execute("SET lock_timeout = '200ms'")
    )
    try:
        async with PostgresProjectionStore(engine).transaction() as uow:
            [archived] = await uow.record_new([LoggedEvent(event("k", 0), 0, 0)])
            assert [s.id for s in await uow.subscriptions()] == [sid]
            await uow.add_deliveries([NewDelivery(sid, archived.seq, archived.event.id, "k")])

            [meanwhile] = await _project(PostgresProjectionStore(other_member), "l", offset=1)

        assert await _receivers(engine, meanwhile) == {sid}
    finally:
        await other_member.dispose()


async def test_a_batch_too_large_for_one_statement_archives_the_same_rows_by_copy(
    pg: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = pg["engine"]
    await _subscribe(engine)
    store = PostgresProjectionStore(engine)
    accepted = datetime(2026, 11, 30, 8, 0, 0, 123456, tzinfo=UTC)

    async def archive() -> list[Any]:
        keyed = event("l", 8, partitionkey="x", time="2026-11-30T07:59:00.5+01:00")
        events = [event("k", 7), keyed, event("k", 9)]
        await apply_events(store, [LoggedEvent(e, 1, 10 + i, accepted) for i, e in enumerate(events)], None)
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT type, subject, time, ordering_key, event - 'id' AS event, kafka_partition, "
                    "kafka_offset, accepted_at FROM event_archive WHERE event_id = ANY(:ids) ORDER BY seq"
                ),
                {"ids": [e.id for e in events]},
            )
            return [tuple(r) for r in rows]

    together = await archive()
    monkeypatch.setattr(projection, "ARCHIVE_IN_ONE_STATEMENT", 2)
    copied = await archive()

    assert len(together) == 3 and together == copied


async def test_a_batch_applied_in_one_statement_wakes_the_dispatchers(pg: dict[str, Any]) -> None:
    engine = pg["engine"]
    await _subscribe(engine)
    store = PostgresProjectionStore(engine)
    await _project(store, "a", offset=0)  # reads the subscriptions once
    async with await psycopg.AsyncConnection.connect(libpq_url(pg["url"]), autocommit=True) as listener:
        await listener.execute(f"LISTEN {projection.OUTBOX_CHANNEL}")
        statements = pg["statements"]
        statements.clear()

        await _project(store, "b", offset=1)

        assert len(statements) == 1  # the batch went in one statement
        async with asyncio.timeout(5):
            notified = await anext(listener.notifies())
    assert notified.channel == projection.OUTBOX_CHANNEL
