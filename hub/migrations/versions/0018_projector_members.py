"""The projector members' records of their partitions (issue 15: status on Tansu).

Tansu describes a consumer group without the members' assignments, so each projector consumer
writes down the partitions the group gave it; the status joins these rows with the broker's
live members. One row per consumer (its unique Kafka client id), deleted when it stops.

Revision ID: 0018
Revises: 0016
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "projector_members",
        sa.Column("client_id", sa.Text(), primary_key=True),
        sa.Column("consumer_group", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("host", sa.Text(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("partitions", sa.ARRAY(sa.Integer()), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("projector_members")
