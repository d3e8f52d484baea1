"""The claim leases a delivery with a HOT update: it changes no column an index of ``deliveries``
reads (key or predicate), so PostgreSQL writes no index entry for it (issue 17: with the lease in
``next_attempt_at`` no update of a fan-out was HOT, a quarter of PostgreSQL's CPU was B-tree
work). Read from the transaction's own statistics (``pg_stat_xact_user_tables``), never timed."""

from __future__ import annotations

import re

from sqlalchemy import create_engine, text

from benchmarks.claim_backlog import fill_blocked_backlog
from hub.adapters.postgres.claims import CLAIM
from hub.adapters.postgres.engine import sqlalchemy_url

_INDEXES = text("SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'deliveries'::regclass")
_UPDATES = text("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = 'deliveries'")


def test_a_claim_changes_no_indexed_column_and_is_a_hot_update(database_url: str) -> None:
    engine = create_engine(sqlalchemy_url(database_url))
    try:
        with engine.begin() as conn:
            fill_blocked_backlog(conn, deliveries=40, keys=4, subscriptions=1, unkeyed=4, lease_heads=False)
        with engine.connect() as conn:
            sid = conn.execute(text("SELECT id FROM subscriptions")).scalar_one()
            before = {r.id: r for r in conn.execute(text("SELECT * FROM deliveries"))}
            indexes = " ".join(conn.execute(_INDEXES).scalars())
            conn.rollback()
            with conn.begin() as tx:
                params = {
                    "limit": 16,
                    "lease": 60.0,
                    "room_ids": [sid],
                    "room_sizes": [16],
                    "default_concurrency": 16,
                }
                claimed = conn.execute(CLAIM, params).all()
                updated, hot = conn.execute(_UPDATES).one()
                after = {r.id: r for r in conn.execute(text("SELECT * FROM deliveries"))}
                tx.rollback()
    finally:
        engine.dispose()

    changed = {k for c in claimed for k, v in after[c.id]._mapping.items() if before[c.id]._mapping[k] != v}
    assert changed == {"leased_until"}
    assert not re.search(r"\bleased_until\b", indexes), indexes
    assert len(claimed) == 8 and (updated, hot) == (8, 8)  # 4 unkeyed rows and the 4 key heads
