"""The delivery outbox in PostgreSQL: claim due deliveries, record what happened, wake up."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import psycopg
import structlog
from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.adapters.postgres.engine import libpq_url
from hub.adapters.postgres.errors import translate_db_errors
from hub.adapters.postgres.outcomes import record_outcomes
from hub.adapters.postgres.projection import OUTBOX_CHANNEL
from hub.adapters.postgres.tables import OPEN_SQL
from hub.ports import ClaimedDelivery
from hub.ports.delivery import AttemptResult
from subscriptions.delivery import SharedEvent
from subscriptions.lifecycle import ACTIVE

__all__ = ["AttemptResult", "ClaimedDelivery", "OutboxListener", "PostgresOutbox"]

log = structlog.get_logger(__name__)

# The claim executes :func:`subscriptions.lifecycle.is_due` and ``blocked_by`` set-based.
# Fair claim: each active subscription (in random order, so none is always first) offers its
# own due rows, at most ``room`` of them: what its concurrency cap and rate allow right now.
# One subscription's backlog or slow sink therefore never fills a round for the others.
# Per-key order (ordering = 'key'): a delivery is due only when no earlier delivery for the
# same subscription and ordering key is still open (pending, failed-and-waiting, or claimed),
# i.e. only a key's head (its open delivery with the smallest archive_seq) can be due.
# ``heads`` finds them by a loose index scan over ix_deliveries_open_by_key: one index probe
# per key, whatever the backlog behind each head. Walking the due rows and asking each
# "is an earlier one open?" cost O(backlog) per claim once every head was in flight (issue 16).
# Both bounded, so a claim costs O(front + key heads), never O(backlog): the due front (the
# first ``room * _FRONT`` due keyed rows, each asked "is an earlier one open?") finds due heads
# at once when many keys are due (100,000 keys: scanning every head cost 8 s per claim), and
# ``heads`` (at most ``_KEY_HEADS`` = 256 keys per subscription) finds the due heads hidden behind a
# front of blocked rows. Beyond both, a key waits until the front moves (in-flight heads end).
# Rows without an ordering key come from their own partial index (ix_deliveries_due_unkeyed).
_FRONT = 8
_KEY_HEADS = 256
_CLAIM = text(
    f"""
    WITH RECURSIVE room AS (
        SELECT * FROM unnest(CAST(:room_ids AS uuid[]), CAST(:room_sizes AS int[])) AS r(id, size)
    ),
    active AS (
        SELECT s.*, COALESCE(r.size, LEAST(
            COALESCE(s.max_concurrency, :default_concurrency),
            GREATEST(1, floor(LEAST(s.max_rate, s.allowed_rate)))::int
        )) AS room_size
        FROM subscriptions s LEFT JOIN room r ON r.id = s.id
        WHERE s.status = '{ACTIVE}'
    ),
    heads AS (
        SELECT k.*, 1 AS n FROM active s CROSS JOIN LATERAL (
            SELECT d.subscription_id, d.ordering_key, d.id, d.next_attempt_at FROM deliveries d
            WHERE d.subscription_id = s.id AND d.{OPEN_SQL} AND d.ordering_key IS NOT NULL
            ORDER BY d.ordering_key, d.archive_seq LIMIT 1
        ) k
        WHERE s.ordering <> 'none'
        UNION ALL
        SELECT k.*, h.n + 1 FROM heads h CROSS JOIN LATERAL (
            SELECT d.subscription_id, d.ordering_key, d.id, d.next_attempt_at FROM deliveries d
            WHERE d.subscription_id = h.subscription_id AND d.{OPEN_SQL}
              AND d.ordering_key > h.ordering_key
            ORDER BY d.ordering_key, d.archive_seq LIMIT 1
        ) k
        WHERE h.n < {_KEY_HEADS}
    ),
    due AS (
        SELECT p.id
        FROM (SELECT * FROM active ORDER BY random()) s
        CROSS JOIN LATERAL (
            SELECT c.id FROM (
                SELECT * FROM (SELECT d.id, d.next_attempt_at, d.archive_seq FROM deliveries d
                 WHERE s.ordering = 'none' AND d.subscription_id = s.id
                   AND d.{OPEN_SQL} AND d.next_attempt_at <= now()
                 ORDER BY d.next_attempt_at, d.archive_seq LIMIT s.room_size
                 FOR UPDATE OF d SKIP LOCKED) AS unordered
                UNION ALL
                SELECT * FROM (SELECT d.id, d.next_attempt_at, d.archive_seq FROM deliveries d
                 WHERE s.ordering <> 'none' AND d.subscription_id = s.id
                   AND d.{OPEN_SQL} AND d.ordering_key IS NULL AND d.next_attempt_at <= now()
                 ORDER BY d.next_attempt_at, d.archive_seq LIMIT s.room_size
                 FOR UPDATE OF d SKIP LOCKED) AS unkeyed
                UNION ALL
                SELECT * FROM (SELECT d.id, d.next_attempt_at, d.archive_seq FROM deliveries d
                 WHERE d.id IN (
                    SELECT w.id FROM (
                        SELECT e.id, e.ordering_key, e.archive_seq FROM deliveries e
                        WHERE s.ordering <> 'none' AND e.subscription_id = s.id AND e.{OPEN_SQL}
                          AND e.ordering_key IS NOT NULL AND e.next_attempt_at <= now()
                        ORDER BY e.next_attempt_at, e.archive_seq LIMIT s.room_size * {_FRONT}
                    ) w
                    WHERE w.archive_seq = (  -- the key's head (a scalar probe per front row)
                        SELECT f.archive_seq FROM deliveries f
                        WHERE f.subscription_id = s.id AND f.ordering_key = w.ordering_key
                          AND f.{OPEN_SQL}
                        ORDER BY f.archive_seq LIMIT 1)
                    UNION
                    SELECT h.id FROM heads h WHERE h.subscription_id = s.id AND h.next_attempt_at <= now())
                   AND d.{OPEN_SQL} AND d.next_attempt_at <= now()
                 ORDER BY d.next_attempt_at, d.archive_seq LIMIT s.room_size
                 FOR UPDATE OF d SKIP LOCKED) AS keyed
            ) c
            ORDER BY c.next_attempt_at, c.archive_seq
            LIMIT s.room_size
        ) p
        LIMIT :limit
    )
    UPDATE deliveries AS d
    SET next_attempt_at = now() + make_interval(secs => :lease)
    FROM due, event_archive a, subscriptions s
    WHERE d.id = due.id AND a.seq = d.archive_seq AND s.id = d.subscription_id
    RETURNING d.id, d.subscription_id, d.attempts, d.retry_base, d.event_id, d.archive_seq, d.ordering_key,
              CAST(a.event AS text) AS event_json, a.accepted_at, s.sink, s.secret,
              CASE WHEN s.previous_secret_expires_at > now() THEN s.previous_secret END
                  AS previous_secret,
              s.headers, s.retry_schedule, s.ordering, s.max_concurrency,
              LEAST(s.max_rate, s.allowed_rate) AS max_rate, s.content_mode, s.auth, s.organisatie
    """  # noqa: S608 (lifecycle constants, see tables.OPEN_SQL)
)

_NEXT_DUE = text(
    f"""
    SELECT min(d.next_attempt_at) FROM deliveries d
    JOIN subscriptions s ON s.id = d.subscription_id AND s.status = '{ACTIVE}'
    WHERE d.{OPEN_SQL}
    """  # noqa: S608 (lifecycle constants, see tables.OPEN_SQL)
)


def _claimed(rows: Iterable[Row[Any]]) -> list[ClaimedDelivery]:
    """One decoded :class:`SharedEvent` per archived event, shared by its deliveries: a fan-out
    to ten subscriptions decodes the event once and encodes its body once, not ten times."""
    events: dict[int, SharedEvent] = {}
    claimed = []
    for row in rows:
        fields = dict(row._mapping)
        text_ = fields.pop("event_json")
        event = events.get(fields["archive_seq"])
        if event is None:
            event = events[fields["archive_seq"]] = SharedEvent(json.loads(text_))
        claimed.append(ClaimedDelivery(event=event, **fields))
    return claimed


class PostgresOutbox:
    """Outbox operations for the dispatcher."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        source_urn: str = "urn:nld:oin:00000000000000000000:systeem:koppelhub",
        disable_after_seconds: float = 5 * 86_400.0,
        default_concurrency: int = 16,
    ):
        self._engine = engine
        self._source_urn = source_urn
        self._disable_after = disable_after_seconds
        self._default_concurrency = default_concurrency

    async def claim(
        self, limit: int, lease_seconds: float, room: Mapping[uuid.UUID, int] | None = None
    ) -> list[ClaimedDelivery]:
        """Claim up to ``limit`` due deliveries; ``room`` caps what a subscription may get now
        (its free concurrency slots and rate tokens in this dispatcher)."""
        room = room or {}
        params = {
            "limit": limit,
            "lease": lease_seconds,
            "room_ids": list(room),
            "room_sizes": [max(0, n) for n in room.values()],
            "default_concurrency": self._default_concurrency,
        }
        with translate_db_errors():
            async with self._engine.begin() as conn:
                rows = await conn.execute(_CLAIM, params)
                claimed = _claimed(rows)
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
                await record_outcomes(
                    conn, results, source_urn=self._source_urn, disable_after_seconds=self._disable_after
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
