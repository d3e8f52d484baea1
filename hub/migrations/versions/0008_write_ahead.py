"""The write-ahead log of accepted events and the durable dead-letter log (issue 16).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _record() -> list[sa.Column[object]]:
    return [
        sa.Column("key", sa.LargeBinary()),
        sa.Column("value", sa.LargeBinary()),
        sa.Column("header_names", ARRAY(sa.Text()), nullable=False),
        sa.Column("header_values", ARRAY(sa.LargeBinary()), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "event_wal",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), primary_key=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        *_record(),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_event_wal_event", "event_wal", ["source", "event_id"])
    op.create_table(
        "dead_letter_log",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), primary_key=True),
        *_record(),
        sa.Column("parked_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("dead_letter_log")
    op.drop_index("ix_event_wal_event", table_name="event_wal")
    op.drop_table("event_wal")
