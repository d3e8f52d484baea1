"""API tokens in PostgreSQL (the hash of each secret only)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.adapters.postgres.audit import record_in
from hub.adapters.postgres.errors import translate_db_errors
from hub.adapters.postgres.token_tables import api_tokens
from hub.errors import NotFound
from hub.ports.audit import AuditEntry
from hub.ports.tokens import TokenRecord

_COLUMNS = [c for c in api_tokens.c if c.name != "secret_hash"]


def _record(m: Any) -> TokenRecord:
    return TokenRecord(**{f: m[f] for f in TokenRecord.__dataclass_fields__})


class PostgresTokenStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(
        self,
        *,
        name: str,
        role: str,
        organisatie: str | None,
        sources: list[str],
        expires_at: datetime | None,
        secret_hash: str,
        created_by: str | None,
        audit: AuditEntry | None = None,
    ) -> TokenRecord:
        values: dict[str, Any] = dict(name=name, role=role, organisatie=organisatie, sources=sources)
        values |= dict(expires_at=expires_at, secret_hash=secret_hash, created_by=created_by)
        with translate_db_errors():
            async with self._engine.begin() as conn:
                row = (await conn.execute(insert(api_tokens).values(**values).returning(*_COLUMNS))).one()
                await record_in(conn, audit, row.id)
        return _record(row._mapping)

    async def find(self, secret_hash: str) -> TokenRecord | None:
        query = select(*_COLUMNS).where(
            api_tokens.c.secret_hash == secret_hash, api_tokens.c.revoked_at.is_(None)
        )
        with translate_db_errors():
            async with self._engine.connect() as conn:
                row = (await conn.execute(query)).one_or_none()
        return None if row is None else _record(row._mapping)

    async def get(self, token_id: uuid.UUID) -> TokenRecord:
        with translate_db_errors():
            async with self._engine.connect() as conn:
                row = (await conn.execute(select(*_COLUMNS).where(api_tokens.c.id == token_id))).one_or_none()
        if row is None:
            raise NotFound(f"token {token_id} does not exist")
        return _record(row._mapping)

    async def list(self, organisatie: str | None) -> list[TokenRecord]:
        query = select(*_COLUMNS).where(api_tokens.c.revoked_at.is_(None))
        if organisatie is not None:
            query = query.where(api_tokens.c.organisatie == organisatie)
        with translate_db_errors():
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query.order_by(api_tokens.c.created_at, api_tokens.c.id))).all()
        return [_record(r._mapping) for r in rows]

    async def revoke(self, token_id: uuid.UUID, *, audit: AuditEntry | None = None) -> None:
        statement = (
            update(api_tokens)
            .where(api_tokens.c.id == token_id)
            .values(revoked_at=func.coalesce(api_tokens.c.revoked_at, func.now()))
        )
        with translate_db_errors():
            async with self._engine.begin() as conn:
                if (await conn.execute(statement)).rowcount == 0:
                    raise NotFound(f"token {token_id} does not exist")
                await record_in(conn, audit, token_id)
