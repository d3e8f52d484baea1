"""Lease holders: which dispatcher holds a delivery's lease, and whether it still runs.

Each dispatcher takes a random key and holds a session-level advisory lock on it, on a
connection of its own, for as long as it runs; its claims write the key to
``deliveries.leased_by`` (migration 0022). PostgreSQL releases the lock when the session ends,
however the process ended. At its start a dispatcher frees every lease whose holder holds no
lock (:meth:`LeaseHolder.start`): those deliveries are due again at once, not when their lease
ends (60 s by default). At least once holds as before: a delivery that a dead dispatcher had
sent but not recorded is sent again, only sooner.

Limits, both of which only bring back the wait for the lease's end or a second send (at least
once): the lock needs a session of its own (not PgBouncer's transaction pooling); and after a
PostgreSQL restart a running dispatcher holds no lock until its process starts again, so a
dispatcher that starts meanwhile frees its leases too, and a delivery in flight may be sent by
both.
"""

from __future__ import annotations

import secrets

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.adapters.postgres.engine import create_engine
from hub.adapters.postgres.errors import translate_db_errors
from hub.errors import KoppelhubError

__all__ = ["LeaseHolder"]

log = structlog.get_logger(__name__)

#: The first key of every dispatcher's advisory lock (pg_advisory_lock(int, int)): "KH".
NAMESPACE = 0x4B48

_HOLD = text("SELECT pg_try_advisory_lock(:ns, :key)")
_FREE_ORPHANS = text(
    """
    UPDATE deliveries d SET leased_until = NULL
    WHERE d.leased_until > now() AND d.leased_by IS NOT NULL AND d.leased_by <> :key
      AND NOT EXISTS (
        SELECT 1 FROM pg_locks l
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND l.classid = CAST(:ns AS oid) AND l.objid = CAST(d.leased_by AS oid))
    """
)


class LeaseHolder:
    """One dispatcher's key, kept alive by its advisory lock (see module)."""

    def __init__(self, database_url: str) -> None:
        self.key = secrets.randbelow(2**31 - 2) + 1  # positive: the lock's objid is an oid
        self._engine = create_engine(database_url, pool_size=1, pre_ping=False)
        self._session: AsyncConnection | None = None

    async def start(self) -> int:
        """Take the lock, then free the leases of holders that hold none; returns how many were
        freed. Best effort: when PostgreSQL is away, the leases of a dead dispatcher end on their
        own, as before (logged)."""
        try:
            with translate_db_errors():
                self._session = await self._engine.connect()
                held = (await self._session.execute(_HOLD, {"ns": NAMESPACE, "key": self.key})).scalar()
                await self._session.commit()  # the lock is the session's, not the transaction's
                if not held:  # another session has this key (one in 2**31): its lock covers ours
                    log.warning("lease_holder_key_taken", key=self.key)
                async with self._engine.connect() as conn:
                    freed = (await conn.execute(_FREE_ORPHANS, {"ns": NAMESPACE, "key": self.key})).rowcount
                    await conn.commit()
        except KoppelhubError as e:
            log.warning("lease_holder_not_started", error=str(e)[:500])
            return 0
        if freed:
            log.info("orphaned_leases_freed", deliveries=freed, reason="their dispatcher's session is gone")
        return int(freed)

    async def close(self) -> None:
        """End the session, and with it the lock."""
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self._engine.dispose()
