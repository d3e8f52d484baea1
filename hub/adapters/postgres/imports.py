"""Uploaded imports in PostgreSQL: queue, claim (``FOR UPDATE SKIP LOCKED``), status and row errors."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.adapters.postgres.audit import record_in
from hub.adapters.postgres.connector_tables import import_errors, imports
from hub.adapters.postgres.errors import translate_db_errors
from hub.errors import NotFound
from hub.paging import Page, decode_time_cursor, time_cursor
from hub.ports import ImportRecord
from hub.ports.audit import AuditEntry
from hub.ports.connectors import RowError


def _record(m: Any) -> ImportRecord:
    return ImportRecord(**{f: m[f] for f in ImportRecord.__dataclass_fields__})


#: An import :meth:`PostgresImportStore.claim` takes: queued, or its worker's lease ran out
#: (also the runner's look for work, ``PostgresConnectorStore.work_waiting``).
CLAIMABLE = (imports.c.status == "queued") | (
    (imports.c.status == "running") & (imports.c.lease_until < func.now())
)


class PostgresImportStore:
    def __init__(self, engine: AsyncEngine, *, lease_seconds: float = 300.0) -> None:
        self._engine = engine
        self._lease = lease_seconds

    async def create(
        self,
        *,
        import_id: uuid.UUID,
        organisatie: str,
        objecttype: str,
        mode: str,
        filename: str,
        path: str,
        options: dict[str, Any],
        audit: AuditEntry | None = None,
    ) -> ImportRecord:
        with translate_db_errors():
            async with self._engine.begin() as conn:
                row = (
                    await conn.execute(
                        insert(imports)
                        .values(
                            id=import_id,
                            organisatie=organisatie,
                            objecttype=objecttype,
                            mode=mode,
                            filename=filename,
                            path=path,
                            options=options,
                        )
                        .returning(*imports.c)
                    )
                ).one()
                await record_in(conn, audit, import_id)
        return _record(row._mapping)

    async def get(self, import_id: uuid.UUID) -> ImportRecord:
        with translate_db_errors():
            async with self._engine.connect() as conn:
                row = (await conn.execute(select(imports).where(imports.c.id == import_id))).one_or_none()
        if row is None:
            raise NotFound(f"import {import_id} does not exist")
        return _record(row._mapping)

    async def history(
        self, *, limit: int, cursor: str | None, organisatie: str | None = None
    ) -> Page[ImportRecord]:
        """Past and queued imports, newest first."""
        query = select(imports).order_by(imports.c.created_at.desc(), imports.c.id.desc()).limit(limit + 1)
        if organisatie is not None:
            query = query.where(imports.c.organisatie == organisatie)
        if cursor:
            at, after_id = decode_time_cursor(cursor)
            query = query.where(
                or_(imports.c.created_at < at, and_(imports.c.created_at == at, imports.c.id < after_id))
            )
        with translate_db_errors():
            async with self._engine.connect() as conn:
                rows = [_record(r._mapping) for r in await conn.execute(query)]
        items = rows[:limit]
        more = len(rows) > limit
        return Page(items, time_cursor(items[-1].created_at, items[-1].id) if more else None)

    async def claim(self) -> ImportRecord | None:
        """The oldest queued import (or one whose worker's lease ran out), now ``running`` here.

        A re-claimed import starts over: its earlier errors are dropped, and rows it published
        before count as unchanged this time (their fingerprints are recorded)."""
        lease = text(f"now() + interval '{int(self._lease)} seconds'")
        with translate_db_errors():
            async with self._engine.begin() as conn:
                row = (
                    await conn.execute(
                        select(imports.c.id)
                        .where(CLAIMABLE)
                        .order_by(imports.c.created_at)
                        .limit(1)
                        .with_for_update(skip_locked=True)
                    )
                ).one_or_none()
                if row is None:
                    return None
                await conn.execute(delete(import_errors).where(import_errors.c.import_id == row.id))
                claimed = (
                    await conn.execute(
                        update(imports)
                        .where(imports.c.id == row.id)
                        .values(
                            status="running",
                            lease_until=lease,
                            started_at=func.now(),
                            rows_read=0,
                            counts={},
                            report={},
                            error=None,
                        )
                        .returning(*imports.c)
                    )
                ).one()
        return _record(claimed._mapping)

    async def start(self, import_id: uuid.UUID) -> None:
        """Mark an import running here without the queue (``koppelhub import`` runs it itself)."""
        with translate_db_errors():
            async with self._engine.begin() as conn:
                await conn.execute(
                    update(imports)
                    .where(imports.c.id == import_id)
                    .values(
                        status="running", started_at=func.now(), lease_until=text("now() + interval '1 day'")
                    )
                )

    async def requeue(self, import_id: uuid.UUID) -> None:
        """Give a running import back to the queue (this process is stopping)."""
        with translate_db_errors():
            async with self._engine.begin() as conn:
                await conn.execute(
                    update(imports).where(imports.c.id == import_id).values(status="queued", lease_until=None)
                )

    async def finish(
        self,
        import_id: uuid.UUID,
        *,
        error: str | None,
        counts: dict[str, Any] | None = None,
        report: dict[str, Any] | None = None,
    ) -> None:
        values: dict[str, Any] = {
            "status": "failed" if error else "done",
            "error": error,
            "finished_at": func.now(),
            "lease_until": None,
        }
        if counts is not None:
            values["counts"] = counts
        if report is not None:
            values["report"] = report
        with translate_db_errors():
            async with self._engine.begin() as conn:
                await conn.execute(update(imports).where(imports.c.id == import_id).values(**values))

    async def add_errors(self, import_id: uuid.UUID, errors: list[RowError]) -> None:
        with translate_db_errors():
            async with self._engine.begin() as conn:
                start = (
                    await conn.execute(
                        select(func.coalesce(func.max(import_errors.c.seq), 0)).where(
                            import_errors.c.import_id == import_id
                        )
                    )
                ).scalar_one()
                await conn.execute(
                    insert(import_errors),
                    [
                        {
                            "import_id": import_id,
                            "seq": start + i,
                            "row": e.row,
                            "column": e.column,
                            "message": e.message,
                        }
                        for i, e in enumerate(errors, start=1)
                    ],
                )

    async def errors(self, import_id: uuid.UUID, *, limit: int | None = None) -> list[RowError]:
        query = (
            select(import_errors).where(import_errors.c.import_id == import_id).order_by(import_errors.c.seq)
        )
        if limit is not None:
            query = query.limit(limit)
        with translate_db_errors():
            async with self._engine.connect() as conn:
                return [RowError(r.row, r.column, r.message) for r in await conn.execute(query)]

    async def error_count(self, import_id: uuid.UUID) -> int:
        with translate_db_errors():
            async with self._engine.connect() as conn:
                return int(
                    (
                        await conn.execute(select(func.count()).where(import_errors.c.import_id == import_id))
                    ).scalar_one()
                )

    async def stream_errors(self, import_id: uuid.UUID) -> AsyncIterator[RowError]:
        query = (
            select(import_errors).where(import_errors.c.import_id == import_id).order_by(import_errors.c.seq)
        )
        with translate_db_errors():
            async with self._engine.connect() as conn:
                result = await conn.stream(query.execution_options(yield_per=1000))
                async for r in result:
                    yield RowError(r.row, r.column, r.message)
