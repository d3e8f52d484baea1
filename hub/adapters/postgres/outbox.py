"""The delivery outbox in PostgreSQL: claim due deliveries, record what happened, wake up."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
import structlog
from sqlalchemy import bindparam, insert, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.adapters.postgres.engine import libpq_url
from hub.adapters.postgres.errors import translate_db_errors
from hub.adapters.postgres.projection import OUTBOX_CHANNEL
from hub.adapters.postgres.tables import deliveries, delivery_attempts

log = structlog.get_logger(__name__)

# Per-key order: a delivery is due only when no earlier delivery for the same subscription
# and ordering key is still open (pending, failed-and-waiting, or claimed by a dispatcher).
_CLAIM = text(
    """
    WITH due AS (
        SELECT d.id
        FROM deliveries d
        JOIN subscriptions s ON s.id = d.subscription_id AND s.status = 'active'
        WHERE d.status IN ('pending', 'failed')
          AND d.next_attempt_at <= now()
          AND (d.ordering_key IS NULL OR NOT EXISTS (
                SELECT 1 FROM deliveries e
                WHERE e.subscription_id = d.subscription_id
                  AND e.ordering_key = d.ordering_key
                  AND e.status IN ('pending', 'failed')
                  AND e.archive_seq < d.archive_seq))
        ORDER BY d.next_attempt_at, d.archive_seq
        LIMIT :limit
        FOR UPDATE OF d SKIP LOCKED
    )
    UPDATE deliveries AS d
    SET next_attempt_at = now() + make_interval(secs => :lease)
    FROM due, event_archive a, subscriptions s
    WHERE d.id = due.id AND a.seq = d.archive_seq AND s.id = d.subscription_id
    RETURNING d.id, d.subscription_id, d.attempts, d.event_id, d.archive_seq,
              a.event, s.sink, s.secret, s.headers
    """
)

_NEXT_DUE = text(
    """
    SELECT min(d.next_attempt_at) FROM deliveries d
    JOIN subscriptions s ON s.id = d.subscription_id AND s.status = 'active'
    WHERE d.status IN ('pending', 'failed')
    """
)


@dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery this dispatcher holds until its lease runs out."""

    id: uuid.UUID
    subscription_id: uuid.UUID
    attempts: int
    event_id: str
    archive_seq: int
    event: dict[str, Any]
    sink: str
    secret: str
    headers: dict[str, str]


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt came to, and what the delivery becomes."""

    delivery_id: uuid.UUID
    subscription_id: uuid.UUID
    attempt: int
    started_at: datetime
    duration_ms: float
    status_code: int | None
    error: str | None
    response_excerpt: str
    new_status: str  # delivered | failed | dead
    next_attempt_at: datetime | None
    disable_reason: str | None = None  # set when the sink said it is gone (410)


class PostgresOutbox:
    """Outbox operations for the dispatcher."""

    def __init__(self, engine: AsyncEngine):
        self._engine = engine

    async def claim(self, limit: int, lease_seconds: float) -> list[ClaimedDelivery]:
        with translate_db_errors():
            async with self._engine.begin() as conn:
                rows = await conn.execute(_CLAIM, {"limit": limit, "lease": lease_seconds})
                claimed = [ClaimedDelivery(**row._mapping) for row in rows]
        claimed.sort(key=lambda c: c.archive_seq)
        return claimed

    async def next_due(self) -> datetime | None:
        with translate_db_errors():
            async with self._engine.connect() as conn:
                due: datetime | None = (await conn.execute(_NEXT_DUE)).scalar()
                return due

    async def record(self, results: Sequence[AttemptResult]) -> None:
        if not results:
            return
        with translate_db_errors():
            async with self._engine.begin() as conn:
                await conn.execute(
                    insert(delivery_attempts),
                    [
                        {
                            "delivery_id": r.delivery_id,
                            "attempt": r.attempt,
                            "started_at": r.started_at,
                            "duration_ms": r.duration_ms,
                            "status_code": r.status_code,
                            "error": r.error,
                            "response_excerpt": r.response_excerpt,
                        }
                        for r in results
                    ],
                )
                await conn.execute(
                    update(deliveries)
                    # Only the claim we made: a dispatcher whose lease ran out while it could not
                    # reach the database must not overwrite what another one recorded since.
                    .where(deliveries.c.id == bindparam("b_id"))
                    .where(deliveries.c.attempts == bindparam("b_attempt") - 1)
                    .where(text("status IN ('pending', 'failed')"))  # literal: executemany
                    .values(
                        status=bindparam("b_status"),
                        attempts=bindparam("b_attempt"),
                        next_attempt_at=bindparam("b_next"),
                        last_status_code=bindparam("b_code"),
                        last_error=bindparam("b_error"),
                        delivered_at=bindparam("b_delivered_at"),
                        updated_at=text("now()"),
                    ),
                    [
                        {
                            "b_id": r.delivery_id,
                            "b_status": r.new_status,
                            "b_attempt": r.attempt,
                            # A finished delivery keeps its last attempt time; the value is unused.
                            "b_next": r.next_attempt_at or r.started_at,
                            "b_code": r.status_code,
                            "b_error": r.error,
                            "b_delivered_at": r.started_at if r.new_status == "delivered" else None,
                        }
                        for r in results
                    ],
                )
                gone = {r.subscription_id: r.disable_reason for r in results if r.disable_reason}
                for subscription_id, reason in gone.items():
                    await conn.execute(
                        text(
                            "UPDATE subscriptions SET status = 'disabled', status_reason = :reason, "
                            "updated_at = now() WHERE id = :id AND status <> 'disabled'"
                        ),
                        {"id": subscription_id, "reason": reason},
                    )


class OutboxListener:
    """Sets :attr:`wakeup` whenever the projector commits new deliveries (LISTEN/NOTIFY).

    A lost connection is re-opened after a pause; the dispatcher's poll interval covers the gap.
    """

    def __init__(self, database_url: str):
        self._url = libpq_url(database_url)
        self.wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="outbox-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self._url, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {OUTBOX_CHANNEL}")
                    self.wakeup.set()  # something may have arrived while we were not listening
                    async for _ in conn.notifies():
                        self.wakeup.set()
            except psycopg.Error as e:
                log.warning("outbox_listener_lost", error=str(e))
                await asyncio.sleep(1.0)
