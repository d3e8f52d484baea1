"""The claim's work is bounded by keys and claim size, not by the backlog (issue 16's 100k
fault run: with every key's head in flight each claim read the whole backlog to find nothing).
Counted in rows read from ``deliveries`` by EXPLAIN ANALYZE, never timed."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from benchmarks.claim_backlog import claim_cost, claim_params, fill_blocked_backlog
from hub.adapters.postgres.engine import sqlalchemy_url


def test_a_claim_behind_in_flight_key_heads_reads_the_heads_not_the_backlog(database_url: str) -> None:
    engine = create_engine(sqlalchemy_url(database_url))
    try:
        with engine.begin() as conn:
            fill_blocked_backlog(conn, deliveries=6000, keys=3, subscriptions=1, unkeyed=2)
        with engine.connect() as conn:
            sid = conn.execute(text("SELECT id FROM subscriptions")).scalar_one()
            conn.rollback()
            params = claim_params([sid])
            with conn.begin() as tx:
                cost = claim_cost(conn, params)
                tx.rollback()
    finally:
        engine.dispose()

    assert cost["claimed"] == 2  # the two rows without a key; every keyed row waits for its head
    assert cost["rows_visited"] < 1000, cost  # a bounded front and 3 heads, not ~6,000 blocked rows
