"""The claim reads key heads, not the whole backlog (issue 16's 100k fault run).

With ``ordering: key`` the claim used to walk every due row of a subscription and ask, for
each, whether an earlier delivery of its key was still open: with every key's head in flight,
each claim visited the whole backlog to find nothing. It now reads each key's head by a loose
index scan over ``ix_deliveries_open_by_key`` and the due rows without an ordering key from
this partial index, so a claim costs O(keys + claim size), not O(backlog).

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_deliveries_due_unkeyed",
        "deliveries",
        ["subscription_id", "next_attempt_at", "archive_seq"],
        postgresql_where=sa.text("status IN ('pending', 'failed') AND ordering_key IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_due_unkeyed", table_name="deliveries")
