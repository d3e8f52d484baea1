"""A connector that only writes back is never claimed to poll (issue 13 §2).

``connectors.polls`` says whether the connector's config reads a source on its schedule: a
``rest`` connector with only a ``writeBack`` section has nothing to read, so the claim skips
it (and the status does not count it as queued) while its write-back subscription delivers.
Every existing connector polls (each kind required a source until now).

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "connectors", sa.Column("polls", sa.Boolean(), nullable=False, server_default=sa.text("true"))
    )


def downgrade() -> None:
    op.drop_column("connectors", "polls")
