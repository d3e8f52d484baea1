"""Operator status: a partial index of the failing subscriptions, in the order the status lists
them (longest failing first), so ``GET /api/v1/status`` reads its first rows and stops at the
limit however many subscriptions the hub has. The failures in a row and the last error come
from the subscription's own row (migration 0009), no longer recounted from the attempts.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_subscriptions_failing",
        "subscriptions",
        ["failing_since", "updated_at"],
        postgresql_where=sa.text("failing_since IS NOT NULL OR status = 'disabled'"),
    )


def downgrade() -> None:
    op.drop_index("ix_subscriptions_failing", table_name="subscriptions")
