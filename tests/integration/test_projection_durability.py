"""The projector's commits do not wait for the disk; its store's ``durable`` does (issue 17:
latency). The projector commits log positions only after ``durable`` (tests/unit/
test_projector_policy.py), so a batch lost with PostgreSQL's last unflushed commits is read
again from the log."""

from __future__ import annotations

from sqlalchemy import text

from hub.adapters.postgres.engine import create_engine
from hub.adapters.postgres.projection import PostgresProjectionStore
from hub.ports import LoggedEvent
from hub.services.projection import apply_events
from tests.contract.delivery_harness import event

_LSN = text("SELECT pg_current_wal_insert_lsn()")
_TOKEN = text("SELECT CAST(token AS text) FROM projection_incarnation")
_FLUSHED_PAST = text("SELECT pg_current_wal_flush_lsn() >= CAST(:lsn AS pg_lsn)")


async def test_a_projection_commit_does_not_wait_for_the_disk_and_durable_flushes_past_it(
    database_url: str,
) -> None:
    hub_engine = create_engine(database_url, pool_size=1, pre_ping=False, synchronous_commit=False)
    other = create_engine(database_url, pool_size=1, pre_ping=False)
    store = PostgresProjectionStore(hub_engine)
    try:
        async with store.transaction() as uow:
            conn = uow._conn  # the transaction's own connection
            assert (await conn.execute(text("SHOW synchronous_commit"))).scalar() == "off"
        await apply_events(store, [LoggedEvent(event("k1", 1), 0, 1)], None)
        async with other.connect() as conn:
            after_commit = (await conn.execute(_LSN)).scalar()
        incarnation = await store.durable()
        async with other.connect() as conn:
            assert (await conn.execute(_FLUSHED_PAST, {"lsn": after_commit})).scalar() is True
            token = (await conn.execute(_TOKEN)).scalar()
        # the incarnation that made it durable (migration 0021): the same until a crash empties it
        assert incarnation == token
        assert await store.durable() == incarnation
    finally:
        await hub_engine.dispose()
        await other.dispose()


async def test_the_default_engine_still_commits_synchronously(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1, pre_ping=False)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SHOW synchronous_commit"))).scalar() == "on"
    finally:
        await engine.dispose()
