"""Live connectors: the fields each pass-through item published last, and connector runs.

``connector_fingerprints.data`` keeps, next to an item's fingerprint and in the same
transaction, the fields published last (a Signalen melding's ``status``, ``category``, …), so a
change can name its ``wijzigingen`` without a second store. ``connector_runs`` is the history
``GET /api/v1/connectors/{id}/runs`` shows.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("connector_fingerprints", sa.Column("data", JSONB))
    op.create_table(
        "connector_runs",
        sa.Column("id", UUID(as_uuid=True), primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column(
            "connector_id",
            UUID(as_uuid=True),
            sa.ForeignKey("connectors.id", ondelete="CASCADE", name="fk_connector_runs_connector"),
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("status", sa.Text, nullable=False, server_default="running"),
        sa.Column("counts", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("errors", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("checkpoint_before", JSONB),
        sa.Column("checkpoint_after", JSONB),
        sa.Column("diagnostics", JSONB),
    )
    op.create_index("ix_connector_runs_newest", "connector_runs", ["connector_id", "started_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_connector_runs_newest", table_name="connector_runs")
    op.drop_table("connector_runs")
    op.drop_column("connector_fingerprints", "data")
