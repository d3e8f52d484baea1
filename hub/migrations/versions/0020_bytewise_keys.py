"""Byte-order (``COLLATE "C"``) text keys on the projector's per-event indexes (issue 17).

Every projected event inserts a dedupe mark (``processed_events``: source, event_id), one or
two archive rows (``event_archive.type``, indexed) and, for a landscape event, a watermark
(``landscape_watermarks``: objecttype, object_id, source). Under the database's default
collation (``C.UTF-8`` or a language locale, not PostgreSQL's ``C`` fast path) each B-tree
comparison of those keys went through ``strcoll``; the event types and URNs share long
prefixes (``nl.softwarecatalogus.…``, ``urn:nld:oin:…``), so each comparison walked them.
With ``COLLATE "C"`` the comparison is a ``memcmp``.

Nothing sorts by these columns or compares them by anything but equality (dedupe, watermark
lookups and upserts, ``type = ANY`` / ``type <> ALL``), and equality of deterministic
collations is byte equality either way, so no answer changes. The landscape tables' ids are
``COLLATE "C"`` already (0003). Changing a column's collation keeps the table but rebuilds its
indexes that use the column.

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

#: Table → its text key columns that change collation.
KEYS = {
    "processed_events": ("source", "event_id"),
    "event_archive": ("type",),
    "landscape_watermarks": ("objecttype", "object_id", "source"),
}


def upgrade() -> None:
    for table, columns in KEYS.items():
        with op.batch_alter_table(table) as batch:
            for name in columns:
                batch.alter_column(name, type_=sa.Text(collation="C"), existing_nullable=False)


def downgrade() -> None:
    for table, columns in KEYS.items():
        with op.batch_alter_table(table) as batch:
            for name in columns:
                batch.alter_column(name, type_=sa.Text(), existing_nullable=False)
