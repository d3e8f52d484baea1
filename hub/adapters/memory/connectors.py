"""In-memory twins of the connector and import stores (contract:
``tests/contract/test_connector_stores.py``).

They share one :class:`InMemoryConnectorTables` (``connector_tables``) with the fingerprint
store's twin (``fingerprints``, re-exported here), as their PostgreSQL adapters share the
``connectors``, ``imports``, ``import_errors`` and ``connector_fingerprints`` tables: a
fingerprint commit carries its owner's progress (a connector's checkpoint, an import's counts
and row errors) in the same step. Leases are times on the tables' ``clock``, so a test can let
one run out by moving the clock.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from hub.adapters.memory.audit import InMemoryAuditLog
from hub.adapters.memory.connector_tables import Held, InMemoryConnectorTables
from hub.adapters.memory.fingerprints import InMemoryFingerprintStore
from hub.errors import NotFound, PermanentError
from hub.paging import Page, decode_time_cursor, time_cursor
from hub.ports import ConnectorRecord, ImportRecord
from hub.ports.audit import AuditEntry
from hub.ports.connectors import RowError

__all__ = [
    "InMemoryConnectorStore",
    "InMemoryConnectorTables",
    "InMemoryFingerprintStore",
    "InMemoryImportStore",
]


def _import(tables: InMemoryConnectorTables, import_id: uuid.UUID) -> Held:
    held = tables.imports.get(import_id)
    if held is None:
        raise NotFound(f"import {import_id} does not exist")
    return held


def _connector(tables: InMemoryConnectorTables, connector_id: uuid.UUID) -> Held:
    held = tables.connectors.get(connector_id)
    if held is None:
        raise NotFound(f"connector {connector_id} does not exist")
    return held


def _due(held: Held, now: datetime) -> bool:
    """A connector ``claim_due`` takes: enabled, polling, due, not held."""
    r, lease = held.record, held.lease_until
    return bool(r.enabled and r.polls and r.next_run_at <= now and (lease is None or lease < now))


def _claimable(held: Held, now: datetime) -> bool:
    """An import ``claim`` takes: queued, or its worker's lease ran out."""
    status, lease = held.record.status, held.lease_until
    return bool(status == "queued" or (status == "running" and lease is not None and lease < now))


class InMemoryConnectorStore:
    """Connector instances: CRUD for the API, due-claims with leases for the runner."""

    def __init__(
        self,
        tables: InMemoryConnectorTables,
        *,
        lease_seconds: float = 300.0,
        audit_log: InMemoryAuditLog | None = None,
    ) -> None:
        self._t, self._lease = tables, timedelta(seconds=lease_seconds)
        self._audit = audit_log or InMemoryAuditLog()  # the twin of the audit table

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
        now = self._t.clock()
        record = ConnectorRecord(
            id=uuid.uuid4(),
            kind=kind,
            organisatie=organisatie,
            config=config,
            schedule_seconds=schedule_seconds,
            enabled=enabled,
            checkpoint=None,
            next_run_at=now,
            failures=0,
            last_run_at=None,
            last_success_at=None,
            last_error=None,
            last_counts=None,
            events_published=0,
            created_at=now,
            updated_at=now,
            polls=polls,
        )
        self._t.connectors[record.id] = Held(record)
        self._audit.append(audit, record.id)
        return record

    async def get(self, connector_id: uuid.UUID) -> ConnectorRecord:
        record: ConnectorRecord = _connector(self._t, connector_id).record
        return record

    async def all(self, *, organisatie: str | None = None) -> list[ConnectorRecord]:
        found = [h.record for h in self._t.connectors.values()]
        if organisatie is not None:
            found = [r for r in found if r.organisatie == organisatie]
        return sorted(found, key=lambda r: (r.created_at, r.id))

    async def update(
        self, connector_id: uuid.UUID, *, audit: AuditEntry | None = None, **values: Any
    ) -> ConnectorRecord:
        """Change config, schedule or enabled; a changed config starts over (checkpoint cleared)."""
        held = _connector(self._t, connector_id)
        if "config" in values:
            values["checkpoint"] = None
        held.record = replace(held.record, **values, updated_at=self._t.clock())
        self._audit.append(audit, connector_id)
        record: ConnectorRecord = held.record
        return record

    async def delete(self, connector_id: uuid.UUID, *, audit: AuditEntry | None = None) -> None:
        _connector(self._t, connector_id)
        del self._t.connectors[connector_id]
        self._audit.append(audit, connector_id)

    async def request_run(self, connector_id: uuid.UUID, *, audit: AuditEntry | None = None) -> None:
        """Make the connector due now (the runner picks it up at its next poll)."""
        await self.update(connector_id, audit=audit, next_run_at=self._t.clock())

    async def claim_due(self, limit: int) -> list[ConnectorRecord]:
        """Enabled connectors that poll, whose time has come and that no runner holds, leased to
        this one."""
        now = self._t.clock()
        due = sorted(
            (h for h in self._t.connectors.values() if _due(h, now)), key=lambda h: h.record.next_run_at
        )[:limit]
        for held in due:
            held.lease_until = now + self._lease
            held.record = replace(held.record, last_run_at=now)
        return [h.record for h in due]

    async def work_waiting(self) -> bool:
        now = self._t.clock()
        return any(_due(h, now) for h in self._t.connectors.values()) or any(
            _claimable(h, now) for h in self._t.imports.values()
        )

    async def finish(
        self,
        connector_id: uuid.UUID,
        *,
        error: str | None,
        counts: dict[str, Any] | None,
        next_in_seconds: float,
    ) -> None:
        """Record the outcome of a run and when the next one is due; the lease ends."""
        held = self._t.connectors.get(connector_id)
        if held is None:
            return  # as an UPDATE of no row
        now, r = self._t.clock(), held.record
        values: dict[str, Any] = {
            "next_run_at": now + timedelta(seconds=next_in_seconds),
            "last_counts": counts,
        }
        if error is None:
            values.update(last_success_at=now, last_error=None, failures=0)
        else:
            values.update(last_error=error[:2000], failures=r.failures + 1)
        held.lease_until = None
        held.record = replace(r, **values)


class InMemoryImportStore:
    """Uploaded imports: queue, claim with leases, status and row errors."""

    def __init__(
        self,
        tables: InMemoryConnectorTables,
        *,
        lease_seconds: float = 300.0,
        audit_log: InMemoryAuditLog | None = None,
    ) -> None:
        self._t, self._lease = tables, timedelta(seconds=lease_seconds)
        self._audit = audit_log or InMemoryAuditLog()  # the twin of the audit table

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
        if import_id in self._t.imports:  # the primary key, as in PostgreSQL
            raise PermanentError(f"import {import_id} exists already")
        record = ImportRecord(
            id=import_id,
            organisatie=organisatie,
            objecttype=objecttype,
            mode=mode,
            filename=filename,
            path=path,
            options=options,
            status="queued",
            rows_read=0,
            counts={},
            report={},
            error=None,
            created_at=self._t.clock(),
            started_at=None,
            finished_at=None,
        )
        self._t.imports[import_id] = Held(record)
        self._audit.append(audit, import_id)
        return record

    async def get(self, import_id: uuid.UUID) -> ImportRecord:
        record: ImportRecord = _import(self._t, import_id).record
        return record

    async def history(
        self, *, limit: int, cursor: str | None, organisatie: str | None = None
    ) -> Page[ImportRecord]:
        """Past and queued imports, newest first."""
        rows: list[ImportRecord] = sorted(
            (h.record for h in self._t.imports.values() if organisatie in (None, h.record.organisatie)),
            key=lambda r: (r.created_at, r.id),
            reverse=True,
        )
        if cursor:
            after = decode_time_cursor(cursor)
            rows = [r for r in rows if (r.created_at, r.id) < after]
        items = rows[:limit]
        more = len(rows) > limit
        return Page(items, time_cursor(items[-1].created_at, items[-1].id) if more else None)

    async def claim(self) -> ImportRecord | None:
        """The oldest queued import (or one whose worker's lease ran out), now ``running`` here.

        A re-claimed import starts over: its earlier errors are dropped."""
        now = self._t.clock()
        ready = [h for h in self._t.imports.values() if _claimable(h, now)]
        if not ready:
            return None
        held = min(ready, key=lambda h: h.record.created_at)
        self._t.import_errors.pop(held.record.id, None)
        held.lease_until = now + self._lease
        held.record = replace(
            held.record, status="running", started_at=now, rows_read=0, counts={}, report={}, error=None
        )
        record: ImportRecord = held.record
        return record

    async def start(self, import_id: uuid.UUID) -> None:
        """Mark an import running here without the queue (``koppelhub import`` runs it itself)."""
        held = self._t.imports.get(import_id)
        if held is None:
            return
        now = self._t.clock()
        held.lease_until = now + timedelta(days=1)
        held.record = replace(held.record, status="running", started_at=now)

    async def requeue(self, import_id: uuid.UUID) -> None:
        """Give a running import back to the queue (this process is stopping)."""
        held = self._t.imports.get(import_id)
        if held is not None:
            held.lease_until = None
            held.record = replace(held.record, status="queued")

    async def finish(
        self,
        import_id: uuid.UUID,
        *,
        error: str | None,
        counts: dict[str, Any] | None = None,
        report: dict[str, Any] | None = None,
    ) -> None:
        held = self._t.imports.get(import_id)
        if held is None:
            return
        values: dict[str, Any] = {
            "status": "failed" if error else "done",
            "error": error,
            "finished_at": self._t.clock(),
        }
        if counts is not None:
            values["counts"] = counts
        if report is not None:
            values["report"] = report
        held.lease_until = None
        held.record = replace(held.record, **values)

    async def add_errors(self, import_id: uuid.UUID, errors: list[RowError]) -> None:
        self._t.import_errors.setdefault(import_id, []).extend(errors)

    async def errors(self, import_id: uuid.UUID, *, limit: int | None = None) -> list[RowError]:
        found = self._t.import_errors.get(import_id, [])
        return list(found if limit is None else found[:limit])

    async def error_count(self, import_id: uuid.UUID) -> int:
        return len(self._t.import_errors.get(import_id, []))

    async def stream_errors(self, import_id: uuid.UUID) -> AsyncIterator[RowError]:
        for error in list(self._t.import_errors.get(import_id, [])):
            yield error
