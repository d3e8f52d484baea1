"""Subscription health shown with the subscription: failures in a row and the newest error.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "subscriptions",
        sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default=sa.text("0")),
    )
    op.add_column("subscriptions", sa.Column("last_error", sa.Text))


def downgrade() -> None:
    op.drop_column("subscriptions", "last_error")
    op.drop_column("subscriptions", "consecutive_failures")
