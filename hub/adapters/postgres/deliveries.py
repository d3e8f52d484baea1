"""Manual redelivery, replay and pull: the subscriber-facing uses of the event archive."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.adapters.postgres.alerts import matchable
from hub.adapters.postgres.audit import record_in
from hub.adapters.postgres.errors import translate_db_errors
from hub.adapters.postgres.projection import OUTBOX_CHANNEL
from hub.adapters.postgres.tables import OPEN_SQL, deliveries, event_archive, sql_literals, subscriptions
from hub.errors import NotFound
from hub.ports import MatchableSubscription, PulledPage
from hub.ports.audit import AuditEntry
from subscriptions.lifecycle import RECOVERABLE, REPLAY_SKIPS, RETRY_STATUS
from subscriptions.recipients import event_attributes, receives

_CHUNK = 1_000
#: Archive rows one pull request looks at, at most: a sparse subscription still makes progress.
PULL_SCAN_LIMIT = 10_000

# Manual retry: RETRY_STATUS whatever the state, due now (a lease ends), the schedule restarting.
_RETRY = text(
    f"""
    UPDATE deliveries
    SET status = '{RETRY_STATUS}', next_attempt_at = now(), leased_until = NULL, retry_base = attempts,
        updated_at = now()
    WHERE id = :delivery AND subscription_id = :subscription
    RETURNING id, status, ordering_key, archive_seq
    """  # noqa: S608 (lifecycle constants, see tables.OPEN_SQL)
)
# lifecycle.released: what the failed head held back follows it now, not at its old retry time.
_RELEASE = text(
    f"""
    UPDATE deliveries SET next_attempt_at = now(), leased_until = NULL
    WHERE subscription_id = :subscription AND ordering_key = :key AND archive_seq > :seq
      AND {OPEN_SQL} AND greatest(next_attempt_at, leased_until) > now()
    """  # noqa: S608 (lifecycle constants, see tables.OPEN_SQL)
)

# lifecycle.RECOVERABLE: every failed and dead delivery since a moment, as a manual retry each.
_RECOVER = text(
    f"""
    UPDATE deliveries
    SET status = '{RETRY_STATUS}', next_attempt_at = now(), leased_until = NULL, retry_base = attempts,
        updated_at = now()
    WHERE subscription_id = :subscription AND status IN ({sql_literals(RECOVERABLE)})
      AND created_at >= :since
    RETURNING ordering_key, archive_seq
    """  # noqa: S608 (lifecycle constants, see tables.OPEN_SQL)
)
# lifecycle.needs_replay with onlyUndelivered: not when a delivery of the event was delivered
# or is still open.
_REPLAY_SKIPS = text(
    f"""
    SELECT archive_seq FROM deliveries
    WHERE subscription_id = :subscription AND archive_seq = ANY(:seqs)
      AND status IN ({sql_literals(REPLAY_SKIPS)})
    """  # noqa: S608 (lifecycle constants, see tables.OPEN_SQL)
)


class PostgresDeliveryStore:
    """Operations on one subscription's deliveries and on the archive it matches."""

    def __init__(self, engine: AsyncEngine):
        self._engine = engine

    async def _selector(self, conn: AsyncConnection, subscription_id: uuid.UUID) -> MatchableSubscription:
        row = (
            await conn.execute(
                select(
                    subscriptions.c.source,
                    subscriptions.c.types,
                    subscriptions.c.filters,
                    subscriptions.c.organisatie,
                ).where(subscriptions.c.id == subscription_id)
            )
        ).one_or_none()
        if row is None:
            raise NotFound(f"subscription {subscription_id} does not exist")
        return matchable(subscription_id, row.source, row.types, row.filters, row.organisatie)

    async def retry(
        self, subscription_id: uuid.UUID, delivery_id: uuid.UUID, *, audit: AuditEntry | None = None
    ) -> str:
        """Make one delivery due now with a fresh retry schedule; returns its new status."""
        with translate_db_errors():
            async with self._engine.begin() as conn:
                row = (
                    await conn.execute(_RETRY, {"delivery": delivery_id, "subscription": subscription_id})
                ).one_or_none()
                if row is None:
                    raise NotFound(f"delivery {delivery_id} of subscription {subscription_id} does not exist")
                if row.ordering_key is not None:
                    await conn.execute(
                        _RELEASE,
                        {"subscription": subscription_id, "key": row.ordering_key, "seq": row.archive_seq},
                    )
                await conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": OUTBOX_CHANNEL})
                await record_in(conn, audit)
        return str(row.status)

    async def attempts(self, subscription_id: uuid.UUID, delivery_id: uuid.UUID) -> list[dict[str, Any]]:
        """The attempt log of one delivery, oldest first."""
        query = text(
            """
            SELECT a.attempt, a.started_at, a.duration_ms, a.status_code, a.error, a.response_excerpt
            FROM deliveries d LEFT JOIN delivery_attempts a ON a.delivery_id = d.id
            WHERE d.id = :delivery AND d.subscription_id = :subscription
            ORDER BY a.attempt, a.id
            """
        )
        with translate_db_errors():
            async with self._engine.connect() as conn:
                rows = list(
                    await conn.execute(query, {"delivery": delivery_id, "subscription": subscription_id})
                )
        if not rows:
            raise NotFound(f"delivery {delivery_id} of subscription {subscription_id} does not exist")
        return [dict(r._mapping) for r in rows if r.attempt is not None]

    async def replay(
        self,
        subscription_id: uuid.UUID,
        since: datetime,
        until: datetime | None,
        *,
        only_undelivered: bool = False,
        audit: AuditEntry | None = None,
    ) -> int:
        """Queue a new delivery for every archived event (archived in [since, until)) that matches
        (``only_undelivered``: unless one of it was delivered or is still open)."""
        count = 0
        with translate_db_errors():
            async with self._engine.begin() as conn:
                selector = await self._selector(conn, subscription_id)
                after = 0
                while True:
                    query = (
                        select(
                            event_archive.c.seq,
                            event_archive.c.event_id,
                            event_archive.c.ordering_key,
                            event_archive.c.event,
                        )
                        .where(event_archive.c.seq > after, event_archive.c.archived_at >= since)
                        .order_by(event_archive.c.seq)
                        .limit(_CHUNK)
                    )
                    if until is not None:
                        query = query.where(event_archive.c.archived_at < until)
                    rows = list(await conn.execute(query))
                    if not rows:
                        break
                    after = rows[-1].seq
                    new = [
                        {
                            "subscription_id": subscription_id,
                            "archive_seq": r.seq,
                            "event_id": r.event_id,
                            "ordering_key": r.ordering_key,
                        }
                        for r in rows
                        if receives(selector, event_attributes(r.event))
                    ]
                    if new and only_undelivered:
                        params = {"subscription": subscription_id, "seqs": [n["archive_seq"] for n in new]}
                        skip = set((await conn.execute(_REPLAY_SKIPS, params)).scalars())
                        new = [n for n in new if n["archive_seq"] not in skip]
                    if new:
                        await conn.execute(insert(deliveries), new)
                        count += len(new)
                if count:
                    await conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": OUTBOX_CHANNEL})
                await record_in(conn, audit)
        return count

    async def recover(
        self, subscription_id: uuid.UUID, since: datetime, *, audit: AuditEntry | None = None
    ) -> int:
        """Make every failed and dead delivery created since ``since`` due now, each with a fresh
        retry schedule; what each held back of its key follows it (lifecycle.released)."""
        with translate_db_errors():
            async with self._engine.begin() as conn:
                await self._selector(conn, subscription_id)  # NotFound
                rows = list(await conn.execute(_RECOVER, {"subscription": subscription_id, "since": since}))
                heads: dict[str, int] = {}
                for r in rows:
                    if r.ordering_key is not None:
                        heads[r.ordering_key] = min(heads.get(r.ordering_key, r.archive_seq), r.archive_seq)
                for key, seq in heads.items():
                    await conn.execute(_RELEASE, {"subscription": subscription_id, "key": key, "seq": seq})
                if rows:
                    await conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": OUTBOX_CHANNEL})
                await record_in(conn, audit)
        return len(rows)

    async def pull(self, subscription_id: uuid.UUID, *, after: int, limit: int) -> PulledPage:
        """Matching archived events after position ``after``, in archive order."""
        found: list[dict[str, Any]] = []
        last = after
        more = False
        with translate_db_errors():
            async with self._engine.connect() as conn:
                selector = await self._selector(conn, subscription_id)
                scanned = 0
                while len(found) < limit and scanned < PULL_SCAN_LIMIT:
                    rows = list(
                        await conn.execute(
                            select(event_archive.c.seq, event_archive.c.event)
                            .where(event_archive.c.seq > last)
                            .order_by(event_archive.c.seq)
                            .limit(_CHUNK)
                        )
                    )
                    scanned += len(rows)
                    more = len(rows) == _CHUNK
                    for index, r in enumerate(rows):
                        if receives(selector, event_attributes(r.event)):
                            found.append(r.event)
                        last = r.seq
                        if len(found) == limit:
                            more = more or index < len(rows) - 1
                            break
                    if len(rows) < _CHUNK:
                        break
        return PulledPage(found, last, more)
