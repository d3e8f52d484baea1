"""Outbox claims stay cheap on a fresh, fast-growing deliveries table.

The due index now matches the claim's ORDER BY (next_attempt_at, archive_seq), and autovacuum
analyses the table after 1,000 changed rows instead of 10 % of it: with stale statistics the
planner walked every open row of the per-key index (30-50 ms per claim at 15k pending,
measured with benchmarks/e2e.py) instead of reading the ~200 due rows (1.6 ms).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_OPEN = sa.text("status IN ('pending', 'failed')")


def upgrade() -> None:
    op.drop_index("ix_deliveries_due", table_name="deliveries")
    op.create_index(
        "ix_deliveries_due", "deliveries", ["next_attempt_at", "archive_seq"], postgresql_where=_OPEN
    )
    op.execute(
        "ALTER TABLE deliveries SET (autovacuum_analyze_threshold = 1000, "
        "autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_scale_factor = 0.05)"
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE deliveries RESET (autovacuum_analyze_threshold, "
        "autovacuum_analyze_scale_factor, autovacuum_vacuum_scale_factor)"
    )
    op.drop_index("ix_deliveries_due", table_name="deliveries")
    op.create_index("ix_deliveries_due", "deliveries", ["next_attempt_at"], postgresql_where=_OPEN)
