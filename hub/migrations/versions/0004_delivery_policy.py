"""Delivery policy: subscription life cycle, per-subscription retry and flow control, secret
rotation, handshake result, sink authentication, manual redelivery, retention.

Subscriptions gain their own delivery options (all nullable or defaulted, so existing rows
keep the global behaviour); deliveries gain ``retry_base`` (a manual retry restarts the
schedule without forgetting earlier attempts); a per-subscription due index serves the fair
claim; attempt and archive time indexes serve the retention cleanup.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_OPEN = sa.text("status IN ('pending', 'failed')")

_SUBSCRIPTION_COLUMNS: list[sa.Column[Any]] = [
    sa.Column("retry_schedule", pg.JSONB()),
    sa.Column("ordering", sa.Text(), server_default="key", nullable=False),
    sa.Column("max_concurrency", sa.Integer()),
    sa.Column("max_rate", sa.Float()),
    sa.Column("content_mode", sa.Text(), server_default="structured", nullable=False),
    sa.Column("previous_secret", sa.Text()),
    sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True)),
    sa.Column("handshake", sa.Text()),
    sa.Column("allowed_rate", sa.Float()),
    sa.Column("failing_since", sa.DateTime(timezone=True)),
    sa.Column("auth", pg.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
]


def upgrade() -> None:
    for column in _SUBSCRIPTION_COLUMNS:
        op.add_column("subscriptions", column)
    op.add_column("deliveries", sa.Column("retry_base", sa.Integer(), server_default="0", nullable=False))
    op.create_index(
        "ix_deliveries_due_by_subscription",
        "deliveries",
        ["subscription_id", "next_attempt_at", "archive_seq"],
        postgresql_where=_OPEN,
    )
    op.create_index("ix_deliveries_archive_seq", "deliveries", ["archive_seq"])
    op.create_index("ix_delivery_attempts_started_at", "delivery_attempts", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_delivery_attempts_started_at", table_name="delivery_attempts")
    op.drop_index("ix_deliveries_archive_seq", table_name="deliveries")
    op.drop_index("ix_deliveries_due_by_subscription", table_name="deliveries")
    op.drop_column("deliveries", "retry_base")
    for column in reversed(_SUBSCRIPTION_COLUMNS):
        op.drop_column("subscriptions", column.name)
