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
# same subscription and ordering key is still open (pending, failed-and-waiting, or claimed).
# The keyed scan walks the due rows oldest first and stops at ``room`` rows that pass; it looks
# at no more than the first ``room * _WINDOW`` due rows (``window_end``, an index walk without
# probes). Without that bound a claim behind in-flight key heads read the whole backlog to find
# nothing (6 s per claim at 300,000 deliveries, issue 16); with it a key whose head lies past
# the window waits until the window moves (the in-flight heads end). Rows without an ordering
# key come from their own partial index (ix_deliveries_due_unkeyed), never behind keyed rows.
_WINDOW = 16
_CLAIM = text(
    f"""
    WITH room AS (
        SELECT * FROM unnest(CAST(:room_ids AS uuid[]), CAST(:room_sizes AS int[])) AS r(id, size)
    ),
    sized AS (
        SELECT s.*, COALESCE(r.size, LEAST(
            COALESCE(s.max_concurrency, :default_concurrency),
            GREATEST(1, floor(LEAST(s.max_rate, s.allowed_rate)))::int
        )) AS room_size
        FROM subscriptions s LEFT JOIN room r ON r.id = s.id
        WHERE s.status = '{ACTIVE}'
    ),
    active AS (  -- with window_end: the (next_attempt_at, archive_seq) of the window's last row
        SELECT s.*, COALESCE(w.next_attempt_at, 'infinity') AS window_at,
               COALESCE(w.archive_seq, 9223372036854775807) AS window_seq
        FROM sized s LEFT JOIN LATERAL (
            SELECT e.next_attempt_at, e.archive_seq FROM deliveries e
            WHERE s.ordering <> 'none' AND e.subscription_id = s.id AND e.{OPEN_SQL}
              AND e.next_attempt_at <= now()
            ORDER BY e.next_attempt_at, e.archive_seq
            OFFSET s.room_size * {_WINDOW} LIMIT 1
        ) w ON true
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
                 WHERE s.ordering <> 'none' AND d.subscription_id = s.id
                   AND d.{OPEN_SQL} AND d.ordering_key IS NOT NULL AND d.next_attempt_at <= now()
                   AND (d.next_attempt_at, d.archive_seq) <= (s.window_at, s.window_seq)
                   AND d.archive_seq = (  -- its key's head: one index probe, never a join
                        SELECT x.archive_seq FROM deliveries x
                        WHERE x.subscription_id = d.subscription_id
                          AND x.ordering_key = d.ordering_key AND x.{OPEN_SQL}
                        ORDER BY x.archive_seq LIMIT 1)
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
