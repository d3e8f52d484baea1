"""Subscriptions and their delivery log in PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, text, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.adapters.postgres.audit import record_in
from hub.adapters.postgres.errors import translate_db_errors
from hub.adapters.postgres.projection import OUTBOX_CHANNEL
from hub.adapters.postgres.tables import OPEN_SQL, deliveries, subscriptions
from hub.errors import NotFound
from hub.paging import BadCursor, Page, decode_cursor, encode_cursor
from hub.ports import SigningTarget, SubscriptionDetails, SubscriptionFilter
from hub.ports.audit import AuditEntry
from hub.ports.subscriptions import CREATE_ONLY, UPDATABLE
from subscriptions.lifecycle import ACTIVE, PAUSE_REASON, PAUSED

_SECRET = ("secret", "previous_secret")
_PUBLIC = [c for c in subscriptions.c if c.name not in _SECRET]

__all__ = ["UPDATABLE", "PostgresSubscriptionStore"]

#: A subscription that delivers again (or is resumed) is healthy: its failure record clears.
_HEALTHY = {"failing_since": None, "consecutive_failures": 0, "last_error": None}

# lifecycle: resuming makes every open delivery due now (leases too end). Rows due already are
# left alone: a paused subscription's backlog is mostly due, and rewriting each of its rows (an
# update no index lets be HOT) was a third of the outbox's updates in benchmarks.fanout's drain.
_RESUME = text(
    f"""
    UPDATE deliveries SET next_attempt_at = now(), leased_until = NULL, updated_at = now()
    WHERE subscription_id = :id AND {OPEN_SQL} AND greatest(next_attempt_at, leased_until) > now()
    """  # noqa: S608 (lifecycle constants, see tables.OPEN_SQL)
)


def _record(row: Row[Any]) -> SubscriptionDetails:
    m = row._mapping
    return SubscriptionDetails(
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
        retry_schedule=m["retry_schedule"],
        ordering=m["ordering"],
        max_concurrency=m["max_concurrency"],
        max_rate=m["max_rate"],
        content_mode=m["content_mode"],
        handshake=m["handshake"],
        allowed_rate=m["allowed_rate"],
        previous_secret_expires_at=m["previous_secret_expires_at"],
        auth=m["auth"] or {},
        consecutive_failures=m["consecutive_failures"],
        last_error=m["last_error"],
        failing_since=m["failing_since"],
        organisatie=m["organisatie"],
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
        audit: AuditEntry | None = None,
        **options: Any,
    ) -> SubscriptionDetails:
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
                            **{k: v for k, v in options.items() if k in UPDATABLE or k in CREATE_ONLY},
                        )
                        .returning(*_PUBLIC)
                    )
                ).one()
                await record_in(conn, audit, row.id)
        return _record(row)

    async def get(self, subscription_id: uuid.UUID) -> SubscriptionDetails:
        with translate_db_errors():
            async with self._engine.connect() as conn:
                row = (
                    await conn.execute(select(*_PUBLIC).where(subscriptions.c.id == subscription_id))
                ).one_or_none()
        if row is None:
            raise NotFound(f"subscription {subscription_id} does not exist")
        return _record(row)

    async def list(
        self,
        *,
        limit: int,
        cursor: str | None,
        where: SubscriptionFilter | None = None,
        owned_by: str | None = None,
    ) -> Page[SubscriptionDetails]:
        query = select(*_PUBLIC).order_by(subscriptions.c.created_at, subscriptions.c.id).limit(limit + 1)
        if where is not None and where.status is not None:
            query = query.where(subscriptions.c.status == where.status)
        if where is not None and where.sink_prefix is not None:
            query = query.where(subscriptions.c.sink.startswith(where.sink_prefix, autoescape=True))
        if owned_by is not None:
            query = query.where(subscriptions.c.organisatie == owned_by)
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

    async def update(
        self,
        subscription_id: uuid.UUID,
        changes: Mapping[str, Any],
        *,
        enabled: bool | None = None,
        audit: AuditEntry | None = None,
    ) -> SubscriptionDetails:
        """Apply ``changes`` (columns in :data:`UPDATABLE`) and the life-cycle switch.

        ``enabled=False`` pauses: deliveries stay queued. ``enabled=True`` makes a paused or
        disabled subscription active again and every open delivery due now, in order (the one
        a 410 left behind included); the failure clock starts afresh.
        """
        values: dict[str, Any] = {k: v for k, v in changes.items() if k in UPDATABLE}
        with translate_db_errors():
            async with self._engine.begin() as conn:
                current = (
                    await conn.execute(
                        select(subscriptions.c.status)
                        .where(subscriptions.c.id == subscription_id)
                        .with_for_update()
                    )
                ).one_or_none()
                if current is None:
                    raise NotFound(f"subscription {subscription_id} does not exist")
                if enabled is False and current.status != PAUSED:
                    values |= {"status": PAUSED, "status_reason": PAUSE_REASON}
                resumed = enabled is True and current.status != ACTIVE
                if resumed:
                    values |= {"status": ACTIVE, "status_reason": None, **_HEALTHY}
                row = (
                    await conn.execute(
                        update(subscriptions)
                        .where(subscriptions.c.id == subscription_id)
                        .values(**values, updated_at=text("now()"))
                        .returning(*_PUBLIC)
                    )
                ).one()
                if resumed:
                    await conn.execute(
                        _RESUME,
                        {"id": subscription_id},
                    )
                    await conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": OUTBOX_CHANNEL})
                await record_in(conn, audit, subscription_id)
        return _record(row)

    async def rotate_secret(
        self,
        subscription_id: uuid.UUID,
        new_secret: str,
        grace_seconds: float,
        *,
        audit: AuditEntry | None = None,
    ) -> datetime:
        """Make ``new_secret`` current; the old one also signs for ``grace_seconds``. Returns when
        the old one stops."""
        statement = text(
            """
            UPDATE subscriptions
            SET previous_secret = secret, secret = :secret,
                previous_secret_expires_at = now() + make_interval(secs => :grace), updated_at = now()
            WHERE id = :id
            RETURNING previous_secret_expires_at
            """
        )
        with translate_db_errors():
            async with self._engine.begin() as conn:
                expires: datetime | None = (
                    await conn.execute(
                        statement, {"id": subscription_id, "secret": new_secret, "grace": grace_seconds}
                    )
                ).scalar()
                if expires is None:
                    raise NotFound(f"subscription {subscription_id} does not exist")
                await record_in(conn, audit, subscription_id)
        return expires

    async def signing_target(self, subscription_id: uuid.UUID) -> SigningTarget:
        """Sink, headers, auth and current secrets, for a test delivery."""
        query = select(
            subscriptions.c.sink,
            subscriptions.c.secret,
            subscriptions.c.headers,
            subscriptions.c.content_mode,
            subscriptions.c.auth,
            text("CASE WHEN previous_secret_expires_at > now() THEN previous_secret END AS previous_secret"),
        ).where(subscriptions.c.id == subscription_id)
        with translate_db_errors():
            async with self._engine.connect() as conn:
                row = (await conn.execute(query)).one_or_none()
        if row is None:
            raise NotFound(f"subscription {subscription_id} does not exist")
        secrets = [row.secret] + ([row.previous_secret] if row.previous_secret else [])
        return SigningTarget(row.sink, secrets, row.headers, row.content_mode, row.auth or {})

    async def delete(self, subscription_id: uuid.UUID, *, audit: AuditEntry | None = None) -> None:
        with translate_db_errors():
            async with self._engine.begin() as conn:
                result = await conn.execute(
                    delete(subscriptions).where(subscriptions.c.id == subscription_id)
                )
                if result.rowcount == 0:
                    raise NotFound(f"subscription {subscription_id} does not exist")
                await record_in(conn, audit, subscription_id)

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
                # Due at the later of the two (migration 0019): a claimed delivery at its lease's end.
                func.greatest(deliveries.c.next_attempt_at, deliveries.c.leased_until).label(
                    "next_attempt_at"
                ),
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
