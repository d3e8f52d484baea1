"""In-memory twin of :class:`hub.adapters.postgres.runs.PostgresRunStore`: connector runs,
newest first, the oldest dropped past ``keep`` per connector."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime
from typing import Any

from hub.adapters.memory.connectors import InMemoryConnectorTables
from hub.ports.connectors import RunRecord

__all__ = ["InMemoryRunStore"]


class InMemoryRunStore:
    def __init__(self, tables: InMemoryConnectorTables, *, keep: int = 200) -> None:
        self._t, self._keep = tables, keep
        self._runs: dict[uuid.UUID, RunRecord] = {}

    async def start_run(self, connector_id: uuid.UUID, checkpoint: dict[str, Any] | None) -> uuid.UUID:
        run = RunRecord(
            uuid.uuid4(), connector_id, self._t.clock(), None, "running", {}, [], checkpoint, None, None
        )
        self._runs[run.id] = run
        return run.id

    async def finish_run(
        self,
        run_id: uuid.UUID,
        *,
        status: str,
        counts: dict[str, Any],
        errors: list[dict[str, Any]],
        diagnostics: dict[str, Any] | None,
    ) -> None:
        run = self._runs.get(run_id)
        if run is None:
            return
        held = self._t.connectors.get(run.connector_id)
        self._runs[run_id] = replace(
            run,
            finished_at=self._t.clock(),
            status=status,
            counts=counts,
            errors=errors,
            diagnostics=diagnostics,
            checkpoint_after=held.record.checkpoint if held is not None else None,
        )
        for old in self._newest_first(run.connector_id)[self._keep :]:
            del self._runs[old.id]

    def _newest_first(self, connector_id: uuid.UUID) -> list[RunRecord]:
        mine = [r for r in self._runs.values() if r.connector_id == connector_id]
        return sorted(mine, key=lambda r: (r.started_at, r.id), reverse=True)

    async def runs(
        self, connector_id: uuid.UUID, *, limit: int, before: tuple[datetime, uuid.UUID] | None = None
    ) -> list[RunRecord]:
        runs = self._newest_first(connector_id)
        if before is not None:
            runs = [r for r in runs if (r.started_at, r.id) < before]
        return runs[:limit]
