"""Many rows in one statement: ``INSERT … SELECT … FROM jsonb_to_recordset(:rows)``.

An executemany through psycopg sends one INSERT per row (pipelined); for the projector's
batches that was most of its time (measured with benchmarks/projection.py: 500-row batches
into five tables). One JSONB parameter keeps the statement's shape fixed, so SQLAlchemy
compiles it once, and PostgreSQL turns JSON arrays into ``text[]`` on the way in. orjson
serialises the rows, datetimes and UUIDs included: the standard library's encoder and the
per-value conversion it needed took about 16 % of the projector's time in cProfile.

Hot paths use :func:`insert_statement` / :func:`upsert_statement`: the statement is built
once per table and the rows are bound at execution (``conn.execute(stmt, rows_param(rows))``).
Building the SQLAlchemy construct per batch (the ``excluded`` set of an upsert above all) cost
the projector about as much CPU as serialising its rows (py-spy, benchmarks/projection.py).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Column, Table, bindparam, cast, column, func, select
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.types import BigInteger, DateTime, Float, Integer, Text, TypeEngine


def _plain(type_: TypeEngine[Any]) -> TypeEngine[Any]:
    """The column's type without collation: what a column definition list accepts."""
    if isinstance(type_, ARRAY):
        return ARRAY(Text)
    if isinstance(type_, DateTime):
        return DateTime(timezone=True)
    if isinstance(type_, BigInteger | Integer | Float):
        return type_
    if isinstance(type_, JSONB | UUID):
        return type_
    return Text()


def recordset(columns: Sequence[Column[Any]], rows: Sequence[dict[str, Any]]) -> Select[Any]:
    """``SELECT <columns> FROM jsonb_to_recordset(:rows) AS r(<columns with types>)``.

    Rows are serialised as they are (orjson: datetimes as RFC 3339, UUIDs as strings); keys
    that are not among ``columns`` are ignored and missing ones become NULL."""
    return _recordset(columns, bindparam("rows", value=rows_param(rows)["rows"], type_=Text))


def rows_param(rows: Sequence[dict[str, Any]]) -> dict[str, str]:
    """The execution parameter of a statement from :func:`insert_statement` or
    :func:`upsert_statement`: the rows as one JSON array."""
    return {"rows": orjson.dumps(rows).decode()}


def _recordset(columns: Sequence[Column[Any]], payload: BindParameter[str]) -> Select[Any]:
    source = (
        func.jsonb_to_recordset(cast(payload, JSONB))
        .table_valued(*(column(c.name, _plain(c.type)) for c in columns))
        .render_derived(with_types=True)
    )
    return select(*(source.c[c.name] for c in columns))


@functools.cache
def insert_statement(table: Table, columns: tuple[str, ...] | None = None) -> PgInsert:
    """:func:`insert_rows`, built once: execute it with :func:`rows_param`."""
    chosen = [table.c[name] for name in columns] if columns else list(table.columns)
    payload: BindParameter[str] = bindparam("rows", type_=Text)
    return pg_insert(table).from_select([c.name for c in chosen], _recordset(chosen, payload))


@functools.cache
def upsert_statement(table: Table, key: tuple[str, ...]) -> PgInsert:
    """:func:`upsert_rows`, built once: execute it with :func:`rows_param`."""
    stmt = insert_statement(table)
    return stmt.on_conflict_do_update(
        index_elements=list(key),
        set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name not in key},
    )


def insert_rows(
    table: Table, rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None
) -> PgInsert:
    """One INSERT of ``rows`` into ``table`` (all its columns, or just ``columns``)."""
    chosen = [table.c[name] for name in columns] if columns else list(table.columns)
    return pg_insert(table).from_select([c.name for c in chosen], recordset(chosen, rows))


def upsert_rows(table: Table, rows: Sequence[dict[str, Any]], key: Sequence[str]) -> PgInsert:
    """One INSERT … ON CONFLICT (key) DO UPDATE of every other column."""
    stmt = insert_rows(table, rows)
    return stmt.on_conflict_do_update(
        index_elements=list(key),
        set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name not in key},
    )
