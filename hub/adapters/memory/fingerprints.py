"""The in-memory twin of the fingerprint store (contract: ``tests/contract/test_connector_stores.py``):
a fingerprint commit carries its owner's progress (a connector's checkpoint, an import's counts and
row errors) in the same step, as one PostgreSQL transaction does."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

from hub.adapters.memory.connector_tables import InMemoryConnectorTables, Print, stored_copy
from hub.ports.connectors import BatchCommit, Fingerprint, Key, Owner, Published, SyncScope


class InMemoryFingerprintStore:
    """What each source published last, and its owner's progress committed with it."""

    def __init__(self, tables: InMemoryConnectorTables, *, lease_seconds: float = 300.0) -> None:
        self._t, self._lease = tables, timedelta(seconds=lease_seconds)

    def _scope(self, scope: SyncScope) -> dict[Key, Print]:
        return self._t.fingerprints.setdefault((scope.source, scope.organisatie), {})

    async def known(
        self, scope: SyncScope, keys: Sequence[Key], *, with_data: bool = False
    ) -> dict[Key, Fingerprint]:
        prints = self._t.fingerprints.get((scope.source, scope.organisatie), {})
        return {
            k: Fingerprint(p.hash, p.generation, stored_copy(p.data) if with_data else None)
            for k in keys
            if (p := prints.get(k)) is not None
        }

    async def remember(self, scope: SyncScope, written: Sequence[Published]) -> None:
        prints = self._scope(scope)
        for p in written:
            before = prints.get((p.objecttype, p.object_id))
            prints[(p.objecttype, p.object_id)] = Print(
                p.hash, p.generation, before.seen if before else None, before.data if before else None
            )

    async def commit(self, scope: SyncScope, owner: Owner, batch: BatchCommit) -> None:
        prints = self._scope(scope)
        for p in batch.published:
            prints[(p.objecttype, p.object_id)] = Print(p.hash, p.generation, batch.run, stored_copy(p.data))
        if batch.seen and batch.run is not None:
            for key in batch.seen:
                if key in prints:
                    prints[key].seen = batch.run
        lease_until = self._t.clock() + self._lease
        if owner.kind == "connector":
            held = self._t.connectors.get(owner.id)
            if held is not None:
                r = held.record
                held.lease_until = lease_until
                held.record = replace(
                    r,
                    checkpoint=batch.checkpoint if batch.checkpoint is not None else r.checkpoint,
                    events_published=r.events_published + batch.events,
                    updated_at=self._t.clock(),
                )
            return
        held = self._t.imports.get(owner.id)
        if held is not None:
            held.lease_until = lease_until
            held.record = replace(
                held.record, rows_read=batch.rows_read, counts=dict(batch.counts), report=dict(batch.report)
            )
            if batch.errors:
                self._t.import_errors.setdefault(owner.id, []).extend(batch.errors)

    async def unseen(
        self, scope: SyncScope, run: uuid.UUID, types: Sequence[str], *, after: Key | None, limit: int
    ) -> list[tuple[Key, int]]:
        prints = self._t.fingerprints.get((scope.source, scope.organisatie), {})
        start = after or ("", "")
        live = sorted(
            (key, p.generation)
            for key, p in prints.items()
            if p.hash is not None and p.seen != run and key[0] in types and key > start
        )
        return live[:limit]
