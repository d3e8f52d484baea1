"""Retention: finished deliveries with their attempt log, and archived events nobody needs."""

from __future__ import annotations

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.adapters.postgres.errors import translate_db_errors
from hub.ports import Removed
from schemas.landscape import OBJECT_TYPES, ingetrokken_type, vastgelegd_type

_CHUNK = 5_000

# Attempts of any delivery, once older than the retention; delivered deliveries likewise (their
# log is all that is left of them). Open and dead deliveries stay: they still matter.
_OLD_ATTEMPTS = text(
    """
    DELETE FROM delivery_attempts WHERE id IN (
        SELECT id FROM delivery_attempts
        WHERE started_at < now() - make_interval(secs => :age) LIMIT :chunk)
    """
)
_OLD_DELIVERED = text(
    """
    DELETE FROM deliveries WHERE id IN (
        SELECT id FROM deliveries
        WHERE status = 'delivered' AND updated_at < now() - make_interval(secs => :age) LIMIT :chunk)
    """
)
# An archived event goes once it is old and no remaining delivery (open, dead or delivered but
# still within its own retention) refers to it. processed_events stays: dedupe must hold.
# Inbound landscape events (vastgelegd/ingetrokken) stay too: `koppelhub rebuild` replays them,
# so they are the landscape's own record (derived events and other types may go).
_OLD_ARCHIVE = text(
    """
    DELETE FROM event_archive WHERE seq IN (
        SELECT a.seq FROM event_archive a
        WHERE a.archived_at < now() - make_interval(secs => :age)
          AND a.type <> ALL(CAST(:kept AS text[]))
          AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.archive_seq = a.seq)
        LIMIT :chunk)
    """
)
_KEPT_TYPES = sorted(f(t) for t in OBJECT_TYPES for f in (vastgelegd_type, ingetrokken_type))


class PostgresRetention:
    """Deletes in chunks so no statement holds locks for long."""

    def __init__(self, engine: AsyncEngine):
        self._engine = engine

    async def _drain(self, statement: TextClause, age_seconds: float) -> int:
        total = 0
        while True:
            with translate_db_errors():
                async with self._engine.begin() as conn:
                    params = {"age": age_seconds, "chunk": _CHUNK, "kept": _KEPT_TYPES}
                    result = await conn.execute(statement, params)
            removed: int = result.rowcount
            total += removed
            if removed < _CHUNK:
                return total

    async def cleanup(self, *, attempt_seconds: float, archive_seconds: float) -> Removed:
        return Removed(
            attempts=await self._drain(_OLD_ATTEMPTS, attempt_seconds),
            deliveries=await self._drain(_OLD_DELIVERED, attempt_seconds),
            events=await self._drain(_OLD_ARCHIVE, archive_seconds),
        )
