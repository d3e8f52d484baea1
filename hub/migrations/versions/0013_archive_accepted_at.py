"""When the log accepted an event, kept in the archive: ``accepted_at`` is the Kafka record's
timestamp (CreateTime, set by the hub's producer on publish). The dispatcher reads it with each
claimed delivery and observes ``koppelhub_publish_to_delivery_seconds`` (end to end) when the
delivery succeeds. Nullable: rows archived before this revision, and derived events, have none.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("event_archive", sa.Column("accepted_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("event_archive", "accepted_at")
