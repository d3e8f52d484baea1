"""Connector instances in PostgreSQL: CRUD for the API, and due-claims for the runner."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import and_, delete, exists, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.adapters.postgres.audit import record_in
from hub.adapters.postgres.connector_tables import connectors, imports
from hub.adapters.postgres.errors import translate_db_errors
from hub.adapters.postgres.imports import CLAIMABLE as CLAIMABLE_IMPORT
from hub.errors import NotFound
from hub.ports import ConnectorRecord
from hub.ports.audit import AuditEntry


def _record(m: Any) -> ConnectorRecord:
    return ConnectorRecord(**{f: m[f] for f in ConnectorRecord.__dataclass_fields__})


#: A connector :meth:`PostgresConnectorStore.claim_due` takes: enabled, polling, due, not held.
_DUE = and_(
    connectors.c.enabled,
    connectors.c.polls,
    connectors.c.next_run_at <= func.now(),
    connectors.c.lease_until.is_(None) | (connectors.c.lease_until < func.now()),
)
_WORK_WAITING = select(
    exists().where(_DUE).select_from(connectors) | exists().where(CLAIMABLE_IMPORT).select_from(imports)
)


class PostgresConnectorStore:
    def __init__(self, engine: AsyncEngine, *, lease_seconds: float = 300.0) -> None:
        self._engine = engine
        self._lease = lease_seconds

    async def create(
        self,
        *,
        kind: str,
        organisatie: str,
        config: dict[str, Any],
        schedule_seconds: int,
        enabled: bool,
        polls: bool = True,
        audit: AuditEntry | None = None,
    ) -> ConnectorRecord:
        with translate_db_errors():
            async with self._engine.begin() as conn:
                row = (
                    await conn.execute(
                        insert(connectors)
                        .values(
                            kind=kind,
                            organisatie=organisatie,
                            config=config,
                            schedule_seconds=schedule_seconds,
                            enabled=enabled,
                            polls=polls,
                        )
                        .returning(*connectors.c)
                    )
                ).one()
                await record_in(conn, audit, row.id)
        return _record(row._mapping)

    async def get(self, connector_id: uuid.UUID) -> ConnectorRecord:
        with translate_db_errors():
            async with self._engine.connect() as conn:
                row = (
                    await conn.execute(select(connectors).where(connectors.c.id == connector_id))
                ).one_or_none()
        if row is None:
            raise NotFound(f"connector {connector_id} does not exist")
        return _record(row._mapping)

    async def all(self, *, organisatie: str | None = None) -> list[ConnectorRecord]:
        query = select(connectors).order_by(connectors.c.created_at, connectors.c.id)
        if organisatie is not None:
            query = query.where(connectors.c.organisatie == organisatie)
        with translate_db_errors():
            async with self._engine.connect() as conn:
                return [_record(r._mapping) for r in await conn.execute(query)]

    async def update(
        self, connector_id: uuid.UUID, *, audit: AuditEntry | None = None, **values: Any
    ) -> ConnectorRecord:
        """Change config, schedule or enabled; a changed config starts over (checkpoint cleared)."""
        if "config" in values:
            values["checkpoint"] = None
        with translate_db_errors():
            async with self._engine.begin() as conn:
                row = (
                    await conn.execute(
                        update(connectors)
                        .where(connectors.c.id == connector_id)
                        .values(**values, updated_at=func.now())
                        .returning(*connectors.c)
                    )
                ).one_or_none()
                if row is None:
                    raise NotFound(f"connector {connector_id} does not exist")
                await record_in(conn, audit, connector_id)
        return _record(row._mapping)

    async def delete(self, connector_id: uuid.UUID, *, audit: AuditEntry | None = None) -> None:
        with translate_db_errors():
            async with self._engine.begin() as conn:
                result = await conn.execute(delete(connectors).where(connectors.c.id == connector_id))
                if result.rowcount == 0:
                    raise NotFound(f"connector {connector_id} does not exist")
                await record_in(conn, audit, connector_id)

    async def request_run(self, connector_id: uuid.UUID, *, audit: AuditEntry | None = None) -> None:
        """Make the connector due now (the runner picks it up at its next poll)."""
        await self.update(connector_id, audit=audit, next_run_at=func.now())

    async def claim_due(self, limit: int) -> list[ConnectorRecord]:
        """Enabled connectors that poll, whose time has come and that no runner holds, leased to
        this one."""
        lease = text(f"now() + interval '{int(self._lease)} seconds'")
        with translate_db_errors():
            async with self._engine.begin() as conn:
                ids = list(
                    (
                        await conn.execute(
                            select(connectors.c.id)
                            .where(_DUE)
                            .order_by(connectors.c.next_run_at)
                            .limit(limit)
                            .with_for_update(skip_locked=True)
                        )
                    ).scalars()
                )
                if not ids:
                    return []
                rows = await conn.execute(
                    update(connectors)
                    .where(connectors.c.id.in_(ids))
                    .values(lease_until=lease, last_run_at=func.now())
                    .returning(*connectors.c)
                )
                return [_record(r._mapping) for r in rows]

    async def work_waiting(self) -> bool:
        """One statement outside a transaction (no BEGIN, no COMMIT, no locks): the runner's
        idle poll was two claim transactions, four round trips each, most of an idle API
        child's CPU (issue 17)."""
        with translate_db_errors():
            async with self._engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                return bool((await conn.execute(_WORK_WAITING)).scalar())

    async def finish(
        self,
        connector_id: uuid.UUID,
        *,
        error: str | None,
        counts: dict[str, Any] | None,
        next_in_seconds: float,
    ) -> None:
        """Record the outcome of a run and when the next one is due; the lease ends."""
        nxt = text(f"now() + make_interval(secs => {float(next_in_seconds)})")
        values: dict[str, Any] = {"lease_until": None, "next_run_at": nxt, "last_counts": counts}
        if error is None:
            values.update(last_success_at=func.now(), last_error=None, failures=0)
        else:
            values.update(last_error=error[:2000], failures=connectors.c.failures + 1)
        with translate_db_errors():
            async with self._engine.begin() as conn:
                await conn.execute(update(connectors).where(connectors.c.id == connector_id).values(**values))
