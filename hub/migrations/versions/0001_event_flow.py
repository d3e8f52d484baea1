"""Event flow: dedupe, archive, subscriptions, delivery outbox and attempt log.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_OPEN = sa.text("status IN ('pending', 'failed')")


def upgrade() -> None:
    op.create_table(
        "processed_events",
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("archive_seq", sa.BigInteger(), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("source", "event_id", name="pk_processed_events"),
    )
    op.create_table(
        "event_archive",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), primary_key=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text()),
        sa.Column("time", sa.DateTime(timezone=True)),
        sa.Column("ordering_key", sa.Text()),
        sa.Column("event", pg.JSONB(), nullable=False),
        sa.Column("kafka_partition", sa.Integer()),
        sa.Column("kafka_offset", sa.BigInteger()),
        sa.Column("archived_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_event_archive_type", "event_archive", ["type"])
    op.create_index("ix_event_archive_archived_at", "event_archive", ["archived_at"])
    op.create_table(
        "subscriptions",
        sa.Column("id", pg.UUID(as_uuid=True), server_default=sa.text("gen_random_uuid()"), primary_key=True),
        sa.Column("sink", sa.Text(), nullable=False),
        sa.Column("protocol", sa.Text(), server_default="HTTP", nullable=False),
        sa.Column("source", sa.Text()),
        sa.Column("types", pg.JSONB()),
        sa.Column("filters", pg.JSONB(), server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.Column("headers", pg.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("config", pg.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="active", nullable=False),
        sa.Column("status_reason", sa.Text()),
        sa.Column("owner", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", pg.UUID(as_uuid=True), server_default=sa.text("gen_random_uuid()"), primary_key=True),
        sa.Column("subscription_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("archive_seq", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("ordering_key", sa.Text()),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "next_attempt_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("last_status_code", sa.Integer()),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.ForeignKeyConstraint(
            ["subscription_id"], ["subscriptions.id"], ondelete="CASCADE", name="fk_deliveries_subscription"
        ),
    )
    op.create_index("ix_deliveries_due", "deliveries", ["next_attempt_at"], postgresql_where=_OPEN)
    op.create_index(
        "ix_deliveries_open_by_key",
        "deliveries",
        ["subscription_id", "ordering_key", "archive_seq"],
        postgresql_where=_OPEN,
    )
    op.create_index("ix_deliveries_subscription", "deliveries", ["subscription_id", "archive_seq"])
    op.create_table(
        "delivery_attempts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), primary_key=True),
        sa.Column("delivery_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("status_code", sa.Integer()),
        sa.Column("error", sa.Text()),
        sa.Column("response_excerpt", sa.Text()),
        sa.ForeignKeyConstraint(
            ["delivery_id"], ["deliveries.id"], ondelete="CASCADE", name="fk_delivery_attempts_delivery"
        ),
    )
    op.create_index("ix_delivery_attempts_delivery", "delivery_attempts", ["delivery_id"])


def downgrade() -> None:
    op.drop_table("delivery_attempts")
    op.drop_table("deliveries")
    op.drop_table("subscriptions")
    op.drop_table("event_archive")
    op.drop_table("processed_events")
