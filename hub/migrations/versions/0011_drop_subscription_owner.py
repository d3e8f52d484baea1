"""Subscriptions: drop the ``owner`` column that nothing ever wrote or read.

Migration 0001 gave subscriptions an ``owner`` for a future owner; issue 12 made ownership
the ``organisatie`` column (migration 0007), which the API, the recipients rule and the
lists use. ``owner`` stayed empty on every row, and a column nobody keeps invites a second
idea of who owns a subscription: it goes.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_column("subscriptions", "owner")


def downgrade() -> None:
    op.add_column("subscriptions", sa.Column("owner", sa.Text()))
