"""Retention cleanup on the real database: old attempt logs, delivered deliveries and unneeded
archived events go; open and dead deliveries keep their events; dedupe stays."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from hub.adapters.postgres.engine import create_engine
from hub.adapters.postgres.retention import PostgresRetention
from tests.support.hub_api import subscribe_in_store

pytestmark = pytest.mark.integration

DAY = 86_400.0


async def count(engine: object, sql: str) -> int:
    async with engine.connect() as conn:  # type: ignore[attr-defined]
        return int((await conn.execute(text(sql))).scalar() or 0)


async def test_cleanup_removes_what_is_old_and_unneeded_and_keeps_the_rest(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=2)
    try:
        sub = await subscribe_in_store(engine, "https://example.org/hook")
        async with engine.begin() as conn:
            # seq 1..5 archived 40 days ago, seq 6 today.
            for seq in range(1, 7):
                age = "40 days" if seq <= 5 else "0 days"
                await conn.execute(
                    text(
                        "INSERT INTO processed_events (source, event_id, archive_seq) VALUES ('s', :id, :seq)"
                    ),
                    {"id": f"e{seq}", "seq": seq},
                )
                await conn.execute(
                    text(
                        "INSERT INTO event_archive (seq, source, event_id, type, event, archived_at) "
                        "VALUES (:seq, 's', :id, 't.v1', '{}'::jsonb, now() - CAST(:age AS interval))"
                    ),
                    {"seq": seq, "id": f"e{seq}", "age": age},
                )
            # 1: delivered long ago (goes, and its event with it); 2: dead (stays); 3: pending
            # (stays); 4: delivered yesterday (stays, and keeps its event); 5: no delivery (goes).
            for seq, status, age in ((1, "delivered", "40 days"), (2, "dead", "40 days"),
                                     (3, "pending", "40 days"), (4, "delivered", "1 day")):  # fmt: skip
                await conn.execute(
                    text(
                        "INSERT INTO deliveries (subscription_id, archive_seq, event_id, status, updated_at) "
                        "VALUES (:sub, :seq, :id, :status, now() - CAST(:age AS interval))"
                    ),
                    {"sub": sub.id, "seq": seq, "id": f"e{seq}", "status": status, "age": age},
                )
                await conn.execute(
                    text(
                        "INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms) "
                        "SELECT id, 1, now() - CAST(:age AS interval), 1 "
                        "FROM deliveries WHERE archive_seq = :seq"
                    ),
                    {"seq": seq, "age": age},
                )
        removed = await PostgresRetention(engine).cleanup(attempt_seconds=30 * DAY, archive_seconds=30 * DAY)
        assert (removed.attempts, removed.deliveries, removed.events) == (3, 1, 2)
        assert await count(engine, "SELECT count(*) FROM delivery_attempts") == 1
        kept = "SELECT string_agg(archive_seq::text, ',' ORDER BY archive_seq) FROM deliveries"
        async with engine.connect() as conn:
            assert (await conn.execute(text(kept))).scalar() == "2,3,4"
            seqs = (
                await conn.execute(text("SELECT array_agg(seq ORDER BY seq) FROM event_archive"))
            ).scalar()
        assert seqs == [2, 3, 4, 6]
        assert await count(engine, "SELECT count(*) FROM processed_events") == 6
    finally:
        await engine.dispose()


async def test_old_inbound_landscape_events_stay_for_the_rebuild(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=2)
    types = [
        "nl.softwarecatalogus.gebruik.vastgelegd.v1",
        "nl.softwarecatalogus.gebruik.ingetrokken.v1",
        "nl.softwarecatalogus.gebruik.gewijzigd.v1",  # derived: the rebuild does not need it
        "nl.signalen.melding.gewijzigd.v1",
    ]
    try:
        async with engine.begin() as conn:
            for seq, event_type in enumerate(types, start=1):
                await conn.execute(
                    text(
                        "INSERT INTO event_archive (seq, source, event_id, type, event, archived_at) "
                        "VALUES (:seq, 's', :id, :type, '{}'::jsonb, now() - interval '400 days')"
                    ),
                    {"seq": seq, "id": f"e{seq}", "type": event_type},
                )
        removed = await PostgresRetention(engine).cleanup(attempt_seconds=30 * DAY, archive_seconds=30 * DAY)
        assert removed.events == 2
        async with engine.connect() as conn:
            left = (
                await conn.execute(text("SELECT array_agg(type ORDER BY seq) FROM event_archive"))
            ).scalar()
        assert left == types[:2]
    finally:
        await engine.dispose()
