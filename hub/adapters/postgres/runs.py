"""Connector runs in PostgreSQL (``connector_runs``, migration 0006): one row per run."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.adapters.postgres.connector_tables import connector_runs, connectors
from hub.adapters.postgres.errors import translate_db_errors
from hub.ports.connectors import RunRecord

#: Runs kept per connector; older ones are dropped when a run finishes.
KEEP = 200


class PostgresRunStore:
    def __init__(self, engine: AsyncEngine, *, keep: int = KEEP) -> None:
        self._engine = engine
        self._keep = keep

    async def start_run(self, connector_id: uuid.UUID, checkpoint: dict[str, Any] | None) -> uuid.UUID:
        with translate_db_errors():
            async with self._engine.begin() as conn:
                row = await conn.execute(
                    insert(connector_runs)
                    .values(connector_id=connector_id, checkpoint_before=checkpoint)
                    .returning(connector_runs.c.id)
                )
                run_id: uuid.UUID = row.scalar_one()
                return run_id

    async def finish_run(
        self,
        run_id: uuid.UUID,
        *,
        status: str,
        counts: dict[str, Any],
        errors: list[dict[str, Any]],
        diagnostics: dict[str, Any] | None,
    ) -> None:
        r = connector_runs
        checkpoint = (
            select(connectors.c.checkpoint).where(connectors.c.id == r.c.connector_id).scalar_subquery()
        )
        with translate_db_errors():
            async with self._engine.begin() as conn:
                connector_id = (
                    await conn.execute(
                        update(r)
                        .where(r.c.id == run_id)
                        .values(
                            finished_at=func.now(),
                            status=status,
                            counts=counts,
                            errors=errors,
                            diagnostics=diagnostics,
                            checkpoint_after=checkpoint,
                        )
                        .returning(r.c.connector_id)
                    )
                ).scalar_one_or_none()
                if connector_id is None:
                    return
                old = (
                    select(r.c.id)
                    .where(r.c.connector_id == connector_id)
                    .order_by(r.c.started_at.desc(), r.c.id.desc())
                    .offset(self._keep)
                )
                await conn.execute(r.delete().where(r.c.id.in_(old)))

    async def runs(
        self, connector_id: uuid.UUID, *, limit: int, before: tuple[datetime, uuid.UUID] | None = None
    ) -> list[RunRecord]:
        r = connector_runs
        query = (
            select(r)
            .where(r.c.connector_id == connector_id)
            .order_by(r.c.started_at.desc(), r.c.id.desc())
            .limit(limit)
        )
        if before is not None:
            at, rid = before
            query = query.where(or_(r.c.started_at < at, and_(r.c.started_at == at, r.c.id < rid)))
        with translate_db_errors():
            async with self._engine.connect() as conn:
                rows = await conn.execute(query)
                return [
                    RunRecord(**{f: m[f] for f in RunRecord.__dataclass_fields__}) for m in rows.mappings()
                ]
