"""PostgreSQL adapter of :class:`hub.ports.operators.OperationsStore`: the status summary.

Each part is one statement on the tables' own indexes; the delivery counts read the partial
index of undelivered deliveries (``ix_deliveries_undelivered``, migration 0010), so the summary
stays fast with a large backlog and a long delivered history (benchmarks/status.py: 1,000
subscriptions, 100,000 pending deliveries).
"""

from __future__ import annotations

import json

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.ports.operators import FailedImport, FailingConnector, FailingSubscription, RecentAlert, StoreStatus
from schemas.hub_events import ALERTS
from subscriptions.lifecycle import DEAD, DISABLED, FAILED, OPEN, PENDING

__all__ = ["EXACT_UP_TO", "PostgresOperationsStore"]

#: Up to this many deliveries of one status are counted; above it the status reports the
#: planner's estimate (an operator reads "about 100,000 pending" the same as the exact figure,
#: and counting them all costs a scan that grows with the backlog).
EXACT_UP_TO = 10_000

# Bounded whatever the backlog: each status is counted on the partial index of undelivered
# deliveries (migration 0010) up to :cap rows, and the oldest open delivery is one probe of the
# same index per open status (its (status, created_at) order gives min() as the first entry).
_OUTBOX_SQL = f"""
    SELECT {
    ", ".join(
        f"(SELECT count(*) FROM (SELECT 1 FROM deliveries WHERE status = '{s}' LIMIT :cap) c) AS {s}"
        for s in (PENDING, FAILED, DEAD)
    )
},
           LEAST({", ".join(f"(SELECT min(created_at) FROM deliveries WHERE status = '{s}')" for s in OPEN)})
               AS oldest
    """  # noqa: S608 (lifecycle constants)
# The planner's row estimate of one status (pg_stats' frequency of the status times the table's
# current size): what a count above the cap reports instead of counting every row.
_ESTIMATE = "EXPLAIN (FORMAT JSON) SELECT 1 FROM deliveries WHERE status = '{}'"
# The failing subscriptions with their health as the outcome recorder keeps it on the row
# (consecutive_failures, last_error: migration 0009), not recounted from their attempts; in
# the order of the partial index of failing subscriptions (migration 0014), so the look stops
# at :limit rows.
_FAILING = text(
    f"""
    SELECT id, sink, status, status_reason, failing_since, consecutive_failures AS n, last_error
      FROM subscriptions
     WHERE failing_since IS NOT NULL OR status = '{DISABLED}'
     ORDER BY failing_since NULLS LAST, updated_at
     LIMIT :limit
    """  # noqa: S608 (lifecycle constants)
)
_CONNECTORS_SQL = """
    SELECT json_build_object(
               'total', count(*),
               'running', count(*) FILTER (WHERE lease_until > now()),
               'failing', count(*) FILTER (WHERE failures > 0),
               'queued', count(*) FILTER (WHERE enabled AND polls AND next_run_at <= now()
                                          AND (lease_until IS NULL OR lease_until <= now())))
      FROM connectors
    """
_FAILING_CONNECTORS = text(
    """
    SELECT id, kind, organisatie, failures, last_error, last_run_at FROM connectors
     WHERE failures > 0 ORDER BY failures DESC, last_run_at LIMIT :limit
    """
)

# The counts in one row, one round trip (on a busy machine each statement of a status call is a
# wait for the database's turn): now(), the outbox, and the small tables by status as JSON.
_SUMMARY = text(
    f"""
    SELECT o.*, now() AS now,
           CAST(({_CONNECTORS_SQL}) AS text) AS connectors,
           CAST((SELECT coalesce(json_object_agg(status, n), '{{}}')
                   FROM (SELECT status, count(*) AS n FROM subscriptions GROUP BY status) x) AS text)
               AS subscriptions,
           CAST((SELECT coalesce(json_object_agg(status, n), '{{}}')
                   FROM (SELECT status, count(*) AS n FROM imports GROUP BY status) x) AS text)
               AS imports
      FROM ({_OUTBOX_SQL}) o
    """  # noqa: S608 (lifecycle constants)
)
_FAILED_IMPORTS = text(
    """
    SELECT id, organisatie, objecttype, filename, error, finished_at FROM imports
     WHERE status = 'failed' ORDER BY finished_at DESC NULLS LAST LIMIT :limit
    """
)


# The newest alerts: a backward scan of the archive's seq among rows of the alert types
# (ix_event_archive_type picks them out).
_ALERTS = text(
    """
    SELECT type, subject, time, event -> 'data' AS data FROM event_archive
    WHERE type = ANY(CAST(:types AS text[])) ORDER BY seq DESC LIMIT :limit
    """
)


#: The statements of :meth:`PostgresOperationsStore.status`, by name (benchmarks/status.py
#: EXPLAIN ANALYZEs each).
STATUS_STATEMENTS = ("_SUMMARY", "_FAILING", "_FAILING_CONNECTORS", "_FAILED_IMPORTS")


class PostgresOperationsStore:
    def __init__(self, engine: AsyncEngine, *, exact_up_to: int = EXACT_UP_TO):
        self._engine = engine
        self._exact_up_to = exact_up_to

    async def status(self, *, failing_limit: int = 50) -> StoreStatus:
        limit = {"limit": failing_limit}
        async with self._engine.connect() as conn:
            row = (await conn.execute(_SUMMARY, {"cap": self._exact_up_to + 1})).one()
            counts: dict[str, int] = {s: getattr(row, s) for s in (PENDING, FAILED, DEAD)}
            estimated = tuple(s for s, n in counts.items() if n > self._exact_up_to)
            for s in estimated:
                plan = (await conn.exec_driver_sql(_ESTIMATE.format(s))).scalar_one()
                plan = json.loads(plan) if isinstance(plan, str) else plan
                counts[s] = max(int(plan[0]["Plan"]["Plan Rows"]), self._exact_up_to + 1)
            failing = [
                FailingSubscription(
                    r.id, r.sink, r.status, r.failing_since, r.n or 0, r.last_error, r.status_reason
                )
                for r in await conn.execute(_FAILING, limit)
            ]
            failing_connectors = [
                FailingConnector(*r) for r in await conn.execute(_FAILING_CONNECTORS, limit)
            ]
            failed_imports = [FailedImport(*r) for r in await conn.execute(_FAILED_IMPORTS, limit)]
        return StoreStatus(
            outbox={"pending": counts[PENDING], "failed": counts[FAILED], "dead": counts[DEAD]},
            oldest_pending=row.oldest,
            now=row.now,
            subscriptions=json.loads(row.subscriptions),
            failing_subscriptions=failing,
            connectors=json.loads(row.connectors),
            failing_connectors=failing_connectors,
            imports=json.loads(row.imports),
            failed_imports=failed_imports,
            estimated=estimated,
        )

    async def recent_alerts(self, *, limit: int = 10) -> list[RecentAlert]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(_ALERTS, {"types": list(ALERTS), "limit": limit})
            return [RecentAlert(r.type, r.subject, r.time, r.data or {}) for r in rows]
