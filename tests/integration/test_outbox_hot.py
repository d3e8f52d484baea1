"""The claim leases a delivery with a HOT update: it changes no column an index of ``deliveries``
reads (key or predicate; it sets the lease and its holder, migrations 0019 and 0022), so
PostgreSQL writes no index entry for it (issue 17: with the lease in ``next_attempt_at`` no
update of a fan-out was HOT, a quarter of PostgreSQL's CPU was B-tree work). Read from the
transaction's own statistics (``pg_stat_xact_user_tables``), never timed."""

from __future__ import annotations

import re

from sqlalchemy import create_engine, text

from benchmarks.claim_backlog import claim_params, fill_blocked_backlog
from hub.adapters.postgres.claims import CLAIM
from hub.adapters.postgres.engine import sqlalchemy_url
from hub.adapters.postgres.subscriptions import _RESUME

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
                upd0, hot0 = conn.execute(_UPDATES).one()  # this backend's counts not yet flushed
                params = claim_params([sid])
                claimed = conn.execute(CLAIM, params).all()
                updated, hot = (
                    n - n0 for n, n0 in zip(conn.execute(_UPDATES).one(), (upd0, hot0), strict=True)
                )
                after = {r.id: r for r in conn.execute(text("SELECT * FROM deliveries"))}
                tx.rollback()
    finally:
        engine.dispose()

    changed = {k for c in claimed for k, v in after[c.id]._mapping.items() if before[c.id]._mapping[k] != v}
    assert changed == {"leased_until", "leased_by"}
    assert not re.search(r"\bleased_(until|by)\b", indexes), indexes
    assert len(claimed) == 8 and (updated, hot) == (8, 8)  # 4 unkeyed rows and the 4 key heads


_HOLD_BACK_LAST_TWO = text(
    "UPDATE deliveries SET next_attempt_at = now() + interval '1 hour' "
    "WHERE archive_seq >= (SELECT max(archive_seq) - 1 FROM deliveries)"
)
_WAITING = text("SELECT count(*) FROM deliveries WHERE greatest(next_attempt_at, leased_until) > now()")


def test_a_resume_rewrites_only_the_deliveries_not_due_yet(database_url: str) -> None:
    engine = create_engine(sqlalchemy_url(database_url))
    try:
        with engine.begin() as conn:  # 40 open rows: 4 key heads leased, 2 rows held back, 34 due
            fill_blocked_backlog(conn, deliveries=40, keys=4, subscriptions=1)
            conn.execute(_HOLD_BACK_LAST_TWO)
        with engine.connect() as conn:
            sid = conn.execute(text("SELECT id FROM subscriptions")).scalar_one()
            conn.rollback()
            with conn.begin() as tx:
                before, _ = conn.execute(_UPDATES).one()  # this backend's counts not yet flushed
                conn.execute(_RESUME, {"id": sid})
                updated = conn.execute(_UPDATES).one()[0] - before
                waiting = conn.execute(_WAITING).scalar_one()
                tx.rollback()
    finally:
        engine.dispose()

    assert (updated, waiting) == (6, 0)  # only the leased and the held-back rows; all due now
