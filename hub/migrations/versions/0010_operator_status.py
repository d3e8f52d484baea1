"""Operator status: a partial index of the deliveries that are not delivered, by status and age.

``GET /api/v1/status`` counts pending, failed and dead deliveries and finds the oldest open
one; without this index that is a scan of the whole deliveries table (65 ms at 200,000 rows,
growing with the delivered history). With it, an index-only scan of the undelivered rows.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_deliveries_undelivered",
        "deliveries",
        ["status", "created_at"],
        postgresql_where=sa.text("status IN ('pending', 'failed', 'dead')"),
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_undelivered", table_name="deliveries")
