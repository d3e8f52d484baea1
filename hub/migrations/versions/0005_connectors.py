"""Connectors and imports: connector instances, source fingerprints, uploads, row errors.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _ts(name: str, *, nullable: bool = True, now: bool = False) -> sa.Column[object]:
    return sa.Column(
        name, sa.DateTime(timezone=True), nullable=nullable, server_default=sa.func.now() if now else None
    )


def upgrade() -> None:
    op.create_table(
        "connectors",
        sa.Column("id", UUID(as_uuid=True), primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("organisatie", sa.Text, nullable=False),
        sa.Column("config", JSONB, nullable=False),
        sa.Column("schedule_seconds", sa.Integer, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.text("true")),
        sa.Column("checkpoint", JSONB),
        _ts("next_run_at", nullable=False, now=True),
        _ts("lease_until"),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        _ts("last_run_at"),
        _ts("last_success_at"),
        sa.Column("last_error", sa.Text),
        sa.Column("last_counts", JSONB),
        sa.Column("events_published", sa.BigInteger, nullable=False, server_default="0"),
        _ts("created_at", nullable=False, now=True),
        _ts("updated_at", nullable=False, now=True),
    )
    op.create_index("ix_connectors_due", "connectors", ["next_run_at"], postgresql_where=sa.text("enabled"))
    op.create_index("ix_connectors_organisatie", "connectors", ["organisatie"])
    op.create_table(
        "connector_fingerprints",
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("organisatie", sa.Text, nullable=False),
        sa.Column("objecttype", sa.Text, nullable=False),
        sa.Column("object_id", sa.Text, nullable=False),
        sa.Column("hash", sa.Text),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("seen", UUID(as_uuid=True)),
        _ts("updated_at", nullable=False, now=True),
        sa.PrimaryKeyConstraint(
            "source", "organisatie", "objecttype", "object_id", name="pk_connector_fingerprints"
        ),
    )
    op.create_table(
        "imports",
        sa.Column("id", UUID(as_uuid=True), primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column("organisatie", sa.Text, nullable=False),
        sa.Column("objecttype", sa.Text, nullable=False),
        sa.Column("mode", sa.Text, nullable=False),
        sa.Column("filename", sa.Text, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("options", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("status", sa.Text, nullable=False, server_default="queued"),
        sa.Column("rows_read", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("counts", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("report", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("error", sa.Text),
        _ts("lease_until"),
        _ts("created_at", nullable=False, now=True),
        _ts("started_at"),
        _ts("finished_at"),
    )
    op.create_index(
        "ix_imports_claim",
        "imports",
        ["created_at"],
        postgresql_where=sa.text("status IN ('queued', 'running')"),
    )
    op.create_table(
        "import_errors",
        sa.Column(
            "import_id",
            UUID(as_uuid=True),
            sa.ForeignKey("imports.id", ondelete="CASCADE", name="fk_import_errors_import"),
            nullable=False,
        ),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("row", sa.BigInteger),
        sa.Column("column", sa.Text, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("import_id", "seq", name="pk_import_errors"),
    )


def downgrade() -> None:
    op.drop_table("import_errors")
    op.drop_index("ix_imports_claim", table_name="imports")
    op.drop_table("imports")
    op.drop_table("connector_fingerprints")
    op.drop_index("ix_connectors_organisatie", table_name="connectors")
    op.drop_index("ix_connectors_due", table_name="connectors")
    op.drop_table("connectors")
