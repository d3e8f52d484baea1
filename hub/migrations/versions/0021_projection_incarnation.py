"""The projector's marker of the database's incarnation: an unlogged table of one row.

The projector commits its batches without waiting for the disk and makes them durable with a
flush before it commits log positions past them (``PostgresProjectionStore.durable``). A crash
of PostgreSQL may lose the last commits; the flush after it then proves nothing about the
batches read before it. ``pg_postmaster_start_time()`` does not tell such a crash apart: when
one backend dies, the postmaster runs crash recovery and keeps its start time. Crash recovery
always empties an unlogged table (so does the promotion of a standby), so a token kept in one
changes whenever a crash may have lost commits; the flush reads it and writes a new one when it
is gone.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "projection_incarnation",
        sa.Column("id", sa.Boolean(), primary_key=True, server_default=sa.true()),
        sa.Column("token", pg.UUID(as_uuid=True), nullable=False),
        sa.CheckConstraint("id", name="ck_projection_incarnation_one_row"),
        prefixes=["UNLOGGED"],
    )


def downgrade() -> None:
    op.drop_table("projection_incarnation")
