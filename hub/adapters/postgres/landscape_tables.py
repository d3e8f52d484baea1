"""The landscape tables: one typed table per Softwarecatalogus object type, plus watermarks.

Columns follow the pydantic models in :mod:`schemas.landscape.models` (snake_case of the
register's field names; lists of ids are ``text[]``), then the provenance of the current
state. Migration 0003 creates them; the drift test holds both together.
"""

from __future__ import annotations

import re
from typing import Final, get_origin

from sqlalchemy import BigInteger, Column, DateTime, Index, PrimaryKeyConstraint, Table, Text, text
from sqlalchemy.dialects.postgresql import ARRAY

from hub.adapters.postgres.tables import metadata
from hub.ports.landscape import COLLECTIONS
from schemas.landscape import OBJECT_TYPES


def column_name(field: str) -> str:
    """``applicatieA`` → ``applicatie_a``, ``kvkNummer`` → ``kvk_nummer``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", field).lower()


def _is_list(objecttype: str, field: str) -> bool:
    return get_origin(OBJECT_TYPES[objecttype].model_fields[field].annotation) is list


#: Object type → model field → column name (every field but ``id``).
FIELD_COLUMNS: Final = {
    objecttype: {f: column_name(f) for f in model.model_fields if f != "id"}
    for objecttype, model in OBJECT_TYPES.items()
}

#: Object type → fields stored as ``text[]``.
LIST_FIELDS: Final = {
    objecttype: frozenset(f for f in fields if _is_list(objecttype, f))
    for objecttype, fields in FIELD_COLUMNS.items()
}

_INDEXED: Final = {  # the read API's filters
    "applicatie": ["aanbieder"],
    "gebruik": ["afnemer", "applicatie"],
    "koppeling": ["applicatie_a", "applicatie_b", "organisatie"],
}


def _table(objecttype: str) -> Table:
    model, name = OBJECT_TYPES[objecttype], COLLECTIONS[objecttype]
    columns = [Column("id", Text(collation="C"), nullable=False)]  # byte order, as Python sorts
    for field, column in FIELD_COLUMNS[objecttype].items():
        if field in LIST_FIELDS[objecttype]:
            columns.append(Column(column, ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")))
        else:
            columns.append(Column(column, Text, nullable=not model.model_fields[field].is_required()))
    indexes = [Index(f"ix_{name}_{c}", c) for c in _INDEXED.get(objecttype, [])]
    if objecttype == "applicatie":
        indexes.append(
            Index("ix_applicaties_referentiecomponenten", "referentiecomponenten", postgresql_using="gin")
        )
    return Table(
        name,
        metadata,
        *columns,
        Column("source", Text, nullable=False),
        Column("event_id", Text, nullable=False),
        Column("event_time", DateTime(timezone=True)),
        Column("event_sequence", Text),
        Column("archive_seq", BigInteger, nullable=False),
        PrimaryKeyConstraint("id", name=f"pk_{name}"),
        *indexes,
    )


#: Object type → its table.
LANDSCAPE_TABLES: Final = {objecttype: _table(objecttype) for objecttype in OBJECT_TYPES}

landscape_watermarks = Table(
    "landscape_watermarks",
    metadata,
    # Byte order (migration 0020): a B-tree comparison is a memcmp, not strcoll, per event.
    Column("objecttype", Text(collation="C"), nullable=False),
    Column("object_id", Text(collation="C"), nullable=False),
    Column("source", Text(collation="C"), nullable=False),
    Column("sequence", Text),
    Column("time", DateTime(timezone=True)),
    PrimaryKeyConstraint("objecttype", "object_id", "source", name="pk_landscape_watermarks"),
)
