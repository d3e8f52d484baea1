"""Who holds a delivery's lease: ``deliveries.leased_by``, the key of the dispatcher that claimed it.

A delivery claimed by a dispatcher that died (SIGKILL, the OOM killer, the work child ``run``
stops in a hurry when the embedded broker died) stayed leased until its lease ended (60 s by
default) before another dispatcher sent it. Each dispatcher now holds a session advisory lock on
its key for as long as it runs (``hub.adapters.postgres.lease_holders``); at its start it frees
the leases whose holder holds no lock: that holder's session is gone. No index reads the column,
so the claim, which sets it with the lease, stays a HOT update (migration 0019).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("leased_by", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("deliveries", "leased_by")
