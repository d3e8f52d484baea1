"""Applicatie details a catalogue carries (publiccode.yml): licence, short description, version,
development status, landing page and source repository, all optional.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

COLUMNS = ("licentie", "beschrijving", "versie", "ontwikkelstatus", "website", "broncode")


def upgrade() -> None:
    for column in COLUMNS:
        op.add_column("applicaties", sa.Column(column, sa.Text(), nullable=True))


def downgrade() -> None:
    for column in reversed(COLUMNS):
        op.drop_column("applicaties", column)
