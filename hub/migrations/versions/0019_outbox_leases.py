"""The outbox's claim is a HOT update: the lease has a column of its own (issue 17, fan-out).

Before, a claim leased a delivery by moving ``next_attempt_at`` to the lease's end. Three
indexes hold that column, so every claim was an update PostgreSQL could not make HOT: it wrote a
new entry into each of the table's eight indexes. Each delivery is inserted once and updated
twice (claim, outcome), so about a quarter of PostgreSQL's CPU in ``benchmarks.fanout`` was this
B-tree work (0 of 349,707 updates HOT). Now:

- ``leased_until`` holds the lease; no index and no index predicate reads it, so the claim only
  rewrites the row, on its own page when it has room;
- ``fillfactor`` 70 leaves that room (an outbox row lives briefly: inserted, claimed, finished);
- ``ix_deliveries_due`` goes: only the next-due lookup read it, and that is one probe per
  subscription of ``ix_deliveries_due_by_subscription`` now. One index fewer on every insert.

Measured (``benchmarks.fanout`` phases key/none/drain, 5,000 events x 10 subscriptions, three
runs of each code alternating in both orders, medians, loaded machine): PostgreSQL CPU per
delivery 158 -> 129 us (key), 173 -> 112 us (none), 261 -> 123 us (drain); 39-40 % of the
outbox's updates HOT (0 before). The next-due lookup on 100,000 open deliveries: 34-54 ms ->
10 ms (1,000 subscriptions) or 0.2-1.3 ms (10 subscriptions).

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

_OPEN = sa.text("status IN ('pending', 'failed')")


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True))
    # A lease taken before this migration stays in next_attempt_at: the row is due at the lease's
    # end either way (a delivery is due at the later of next_attempt_at and leased_until).
    op.drop_index("ix_deliveries_due", table_name="deliveries")
    op.execute("ALTER TABLE deliveries SET (fillfactor = 70)")


def downgrade() -> None:
    op.execute("ALTER TABLE deliveries RESET (fillfactor)")
    op.create_index(
        "ix_deliveries_due", "deliveries", ["next_attempt_at", "archive_seq"], postgresql_where=_OPEN
    )
    op.execute(
        "UPDATE deliveries SET next_attempt_at = leased_until "
        "WHERE leased_until > next_attempt_at AND status IN ('pending', 'failed')"  # due at the later
    )
    op.drop_column("deliveries", "leased_until")
