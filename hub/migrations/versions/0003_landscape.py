"""The landscape: one typed table per Softwarecatalogus object type, and per-source watermarks.

Each object row carries the provenance of its current state (source, event id, time,
sequence, archive position). Watermarks outlive a deleted object so that a late, older
assertion stays stale.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _ids(name: str) -> sa.Column[list[str]]:
    return sa.Column(name, pg.ARRAY(sa.Text()), server_default=sa.text("'{}'::text[]"), nullable=False)


def _provenance() -> list[sa.Column[object]]:
    return [
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True)),
        sa.Column("event_sequence", sa.Text()),
        sa.Column("archive_seq", sa.BigInteger(), nullable=False),
    ]


def _text(name: str, *, required: bool = False) -> sa.Column[str]:
    return sa.Column(name, sa.Text(), nullable=not required)


def _id() -> sa.Column[str]:
    # Byte order ("C"), so the primary key index serves cursor paging in a stable order.
    return sa.Column("id", sa.Text(collation="C"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "organisaties",
        _id(),
        _text("naam", required=True),
        _text("type", required=True),
        _text("oin"),
        _text("kvk_nummer"),
        _text("cbs_code"),
        _text("website"),
        _text("status"),
        *_provenance(),
        sa.PrimaryKeyConstraint("id", name="pk_organisaties"),
    )
    op.create_table(
        "applicaties",
        _id(),
        _text("naam", required=True),
        _text("aanbieder"),
        _text("type"),
        _text("licentietype"),
        _ids("referentiecomponenten"),
        *_provenance(),
        sa.PrimaryKeyConstraint("id", name="pk_applicaties"),
    )
    op.create_index("ix_applicaties_aanbieder", "applicaties", ["aanbieder"])
    op.create_index(
        "ix_applicaties_referentiecomponenten",
        "applicaties",
        ["referentiecomponenten"],
        postgresql_using="gin",
    )
    op.create_table(
        "gebruik",
        _id(),
        _text("afnemer", required=True),
        _text("applicatie", required=True),
        _text("status", required=True),
        _text("versie"),
        _ids("referentiecomponenten"),
        _text("interne_aantekening"),
        *_provenance(),
        sa.PrimaryKeyConstraint("id", name="pk_gebruik"),
    )
    op.create_index("ix_gebruik_afnemer", "gebruik", ["afnemer"])
    op.create_index("ix_gebruik_applicatie", "gebruik", ["applicatie"])
    op.create_table(
        "koppelingen",
        _id(),
        _text("applicatie_a", required=True),
        _text("applicatie_b"),
        _text("buitengemeentelijke_voorziening"),
        _text("type", required=True),
        _text("richting"),
        _text("organisatie"),
        _ids("standaarden"),
        _text("status"),
        *_provenance(),
        sa.PrimaryKeyConstraint("id", name="pk_koppelingen"),
    )
    op.create_index("ix_koppelingen_applicatie_a", "koppelingen", ["applicatie_a"])
    op.create_index("ix_koppelingen_applicatie_b", "koppelingen", ["applicatie_b"])
    op.create_index("ix_koppelingen_organisatie", "koppelingen", ["organisatie"])
    op.create_table(
        "referentiecomponenten",
        _id(),
        _text("naam", required=True),
        _text("status"),
        *_provenance(),
        sa.PrimaryKeyConstraint("id", name="pk_referentiecomponenten"),
    )
    op.create_table(
        "standaarden",
        _id(),
        _text("naam", required=True),
        _text("versie"),
        *_provenance(),
        sa.PrimaryKeyConstraint("id", name="pk_standaarden"),
    )
    op.create_table(
        "landscape_watermarks",
        _text("objecttype", required=True),
        _text("object_id", required=True),
        _text("source", required=True),
        _text("sequence"),
        sa.Column("time", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("objecttype", "object_id", "source", name="pk_landscape_watermarks"),
    )


def downgrade() -> None:
    for table in (
        "landscape_watermarks",
        "standaarden",
        "referentiecomponenten",
        "koppelingen",
        "gebruik",
        "applicaties",
        "organisaties",
    ):
        op.drop_table(table)
