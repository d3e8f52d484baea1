"""The audit trail in PostgreSQL: one append-only table (migration 0007), read newest first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, Table, Text, delete, func, insert, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.adapters.postgres.errors import translate_db_errors
from hub.adapters.postgres.tables import metadata
from hub.paging import BadCursor, Page, decode_cursor, encode_cursor
from hub.ports.audit import AuditEntry, AuditQuery

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("time", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("actor_name", Text),
    Column("actor_role", Text),
    Column("actor_organisatie", Text),
    Column("actor_credential", Text),
    Column("action", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("status", Integer, nullable=False),
    Column("request_id", Text),
    Column("client", Text),
    Column("changes", JSONB, nullable=False),
    Index("ix_audit_log_time", "time"),
)

_FIELDS = [f for f in AuditEntry.__dataclass_fields__]


def _entry(m: Any) -> AuditEntry:
    return AuditEntry(**{f: m[f] for f in _FIELDS})


class PostgresAuditLog:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def record(self, entry: AuditEntry) -> None:
        with translate_db_errors():
            async with self._engine.begin() as conn:
                await record_in(conn, entry)

    async def list(self, query: AuditQuery, *, limit: int, cursor: str | None) -> Page[AuditEntry]:
        c = audit_log.c
        statement = select(audit_log).order_by(c.id.desc()).limit(limit + 1)
        if cursor:
            kind, last = decode_cursor(cursor)
            if kind != "a" or not isinstance(last, int):
                raise BadCursor("the cursor is not one this API handed out")
            statement = statement.where(c.id < last)
        if query.since is not None:
            statement = statement.where(c.time >= query.since)
        if query.until is not None:
            statement = statement.where(c.time < query.until)
        if query.actor is not None:
            statement = statement.where((c.actor_name == query.actor) | (c.actor_credential == query.actor))
        if query.action is not None:
            statement = statement.where(c.action == query.action)
        if query.target is not None:
            statement = statement.where(c.target == query.target)
        if query.organisatie is not None:
            statement = statement.where(c.actor_organisatie == query.organisatie)
        with translate_db_errors():
            async with self._engine.connect() as conn:
                rows = list(await conn.execute(statement))
        items = [_entry(r._mapping) for r in rows[:limit]]
        more = len(rows) > limit and items
        return Page(items, encode_cursor("a", items[-1].id or 0) if more else None)

    async def cleanup(self, *, older_than_days: float) -> int:
        before = datetime.now(UTC) - timedelta(days=older_than_days)
        with translate_db_errors():
            async with self._engine.begin() as conn:
                result = await conn.execute(delete(audit_log).where(audit_log.c.time < before))
        return int(result.rowcount or 0)


async def record_in(conn: AsyncConnection, entry: AuditEntry | None, object_id: object = None) -> None:
    """Write a change's entry on the change's own connection, inside its transaction: both are
    committed together or neither (the stores call this as the last step of a write, with the
    id of the object the write made or changed)."""
    if entry is not None:
        about = entry if object_id is None else entry.about(object_id)
        values = {f: getattr(about, f) for f in _FIELDS if f not in ("id", "time")}
        await conn.execute(insert(audit_log).values(**values))
