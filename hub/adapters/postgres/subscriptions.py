"""Subscriptions and their delivery log in PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.adapters.postgres.errors import translate_db_errors
from hub.adapters.postgres.tables import deliveries, subscriptions
from hub.errors import NotFound
from hub.paging import BadCursor, Page, decode_cursor, encode_cursor
from hub.ports import SubscriptionRecord

_PUBLIC = [c for c in subscriptions.c if c.name not in ("secret", "owner")]


def _record(row: Row[Any]) -> SubscriptionRecord:
    m = row._mapping
    return SubscriptionRecord(
        id=m["id"],
        sink=m["sink"],
        protocol=m["protocol"],
        source=m["source"],
        types=m["types"],
        filters=m["filters"],
        headers=m["headers"],
        config=m["config"],
        status=m["status"],
        status_reason=m["status_reason"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


class PostgresSubscriptionStore:
    """Create, read, list and delete subscriptions; read their deliveries."""

    def __init__(self, engine: AsyncEngine):
        self._engine = engine

    async def create(
        self,
        *,
        sink: str,
        protocol: str,
        source: str | None,
        types: list[str] | None,
        filters: list[dict[str, Any]],
        headers: dict[str, str],
        config: dict[str, Any],
        secret: str,
    ) -> SubscriptionRecord:
        with translate_db_errors():
            async with self._engine.begin() as conn:
                row = (
                    await conn.execute(
                        insert(subscriptions)
                        .values(
                            sink=sink,
                            protocol=protocol,
                            source=source,
                            types=types,
                            filters=filters,
                            headers=headers,
                            config=config,
                            secret=secret,
                        )
                        .returning(*_PUBLIC)
                    )
                ).one()
        return _record(row)

    async def get(self, subscription_id: uuid.UUID) -> SubscriptionRecord:
        with translate_db_errors():
            async with self._engine.connect() as conn:
                row = (
                    await conn.execute(select(*_PUBLIC).where(subscriptions.c.id == subscription_id))
                ).one_or_none()
        if row is None:
            raise NotFound(f"subscription {subscription_id} does not exist")
        return _record(row)

    async def list(self, *, limit: int, cursor: str | None) -> Page[SubscriptionRecord]:
        query = select(*_PUBLIC).order_by(subscriptions.c.created_at, subscriptions.c.id).limit(limit + 1)
        if cursor:
            created_text, last_id = decode_cursor(cursor)
            try:
                created = datetime.fromisoformat(str(created_text))
                after_id = uuid.UUID(str(last_id))
            except ValueError as e:
                raise BadCursor("the cursor is not one this API handed out") from e
            query = query.where(
                or_(
                    subscriptions.c.created_at > created,
                    and_(subscriptions.c.created_at == created, subscriptions.c.id > after_id),
                )
            )
        with translate_db_errors():
            async with self._engine.connect() as conn:
                rows = list(await conn.execute(query))
        items = [_record(r) for r in rows[:limit]]
        more = len(rows) > limit
        next_cursor = encode_cursor(items[-1].created_at.isoformat(), str(items[-1].id)) if more else None
        return Page(items, next_cursor)

    async def delete(self, subscription_id: uuid.UUID) -> None:
        with translate_db_errors():
            async with self._engine.begin() as conn:
                result = await conn.execute(
                    delete(subscriptions).where(subscriptions.c.id == subscription_id)
                )
        if result.rowcount == 0:
            raise NotFound(f"subscription {subscription_id} does not exist")

    async def deliveries(
        self, subscription_id: uuid.UUID, *, status: str | None, limit: int, cursor: str | None
    ) -> Page[dict[str, Any]]:
        """The delivery log, oldest event first."""
        await self.get(subscription_id)
        query = (
            select(
                deliveries.c.id,
                deliveries.c.event_id,
                deliveries.c.archive_seq,
                deliveries.c.status,
                deliveries.c.attempts,
                deliveries.c.next_attempt_at,
                deliveries.c.last_status_code,
                deliveries.c.last_error,
                deliveries.c.created_at,
                deliveries.c.delivered_at,
            )
            .where(deliveries.c.subscription_id == subscription_id)
            .order_by(deliveries.c.archive_seq, deliveries.c.id)
            .limit(limit + 1)
        )
        if status:
            query = query.where(deliveries.c.status == status)
        if cursor:
            seq_text, last_id = decode_cursor(cursor)
            try:
                seq, after_id = int(seq_text), uuid.UUID(str(last_id))
                if not 0 <= seq < 2**63:
                    raise ValueError("sequence out of range")
            except ValueError as e:
                raise BadCursor("the cursor is not one this API handed out") from e
            query = query.where(
                or_(
                    deliveries.c.archive_seq > seq,
                    and_(deliveries.c.archive_seq == seq, deliveries.c.id > after_id),
                )
            )
        with translate_db_errors():
            async with self._engine.connect() as conn:
                rows = [dict(r._mapping) for r in await conn.execute(query)]
        items = rows[:limit]
        more = len(rows) > limit
        next_cursor = encode_cursor(items[-1]["archive_seq"], str(items[-1]["id"])) if more else None
        return Page(items, next_cursor)
