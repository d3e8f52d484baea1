"""One run of a connector: map, keep only changes, publish, then record — batch by batch.

For each batch the connector yields: map every record (invalid ones become row errors),
compare each object's content hash with the fingerprint this scope published last, publish
the changed ones and wait for Kafka's acknowledgement, and only then write the new
fingerprints together with the owner's progress (connector checkpoint, import counts) in one
transaction. A crash between publish and commit repeats that batch with the same event ids
(same fingerprint generation), which the projector's dedupe absorbs.

A ``full`` run that read its source to the end withdraws (``ingetrokken``) the objects of the
withdrawable types that it did not read — unless no record at all was valid, which is far
more likely a wrong file than an empty landscape.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from connectors.base import Connector, Record, RecordRejected
from connectors.events import ingetrokken_event, vastgelegd_event
from connectors.ids import content_hash
from hub.ports import EventLog
from hub.services.connector_ports import (
    BatchCommit,
    FingerprintStore,
    Key,
    Owner,
    Published,
    RowError,
    SyncScope,
)
from schemas import CloudEvent

log = structlog.get_logger(__name__)

WITHDRAW_PAGE = 5000


@dataclass
class Tally:
    """Counts of one run: totals and, per object type, found/created/updated/unchanged/removed."""

    read: int = 0
    published: int = 0
    unchanged: int = 0
    invalid: int = 0
    withdrawn: int = 0
    per_type: dict[str, dict[str, int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    sample_errors: list[dict[str, Any]] = field(default_factory=list)  # the first few, for status views

    def bump(self, objecttype: str, what: str, n: int = 1) -> None:
        row = self.per_type.setdefault(
            objecttype, {"found": 0, "created": 0, "updated": 0, "unchanged": 0, "removed": 0}
        )
        row[what] += n

    def counts(self) -> dict[str, int]:
        return {
            "read": self.read,
            "published": self.published,
            "unchanged": self.unchanged,
            "invalid": self.invalid,
            "withdrawn": self.withdrawn,
        }


Progress = Callable[[Tally], None]


@dataclass
class _Pending:
    """A mapped batch waiting to be published and committed."""

    checkpoint: dict[str, Any] | None
    events: list[CloudEvent] = field(default_factory=list)
    published: list[Published] = field(default_factory=list)
    seen: list[Key] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    snapshot: tuple[int, dict[str, int], dict[str, dict[str, int]]] = (0, {}, {})


class SyncRun:
    """Runs one connector once against the event log and the fingerprint store."""

    def __init__(
        self,
        connector: Connector[Any],
        scope: SyncScope,
        owner: Owner,
        store: FingerprintStore,
        event_log: EventLog,
        *,
        on_progress: Progress | None = None,
    ) -> None:
        self.connector, self.scope, self.owner = connector, scope, owner
        self.store, self.event_log = store, event_log
        self.on_progress = on_progress
        self.run_id = uuid.uuid4()
        self.tally = Tally()
        self.types_seen: set[str] = set()

    async def execute(self, checkpoint: dict[str, Any] | None) -> Tally:
        """Read, map and publish every batch; the next batch is mapped while the previous one
        waits for its acknowledgement, and commits stay in batch order."""
        complete = False
        inflight: asyncio.Task[None] | None = None
        try:
            async for batch in self.connector.fetch(checkpoint):
                pending = await self._prepare(batch.records, batch.checkpoint)
                if inflight is not None:
                    await inflight
                inflight = asyncio.create_task(self._deliver(pending))
                complete = complete or batch.complete
                if self.on_progress is not None:
                    self.on_progress(self.tally)
        finally:
            if inflight is not None:
                await inflight  # what was published is recorded, whatever happened since
        if complete and self.connector.full:
            await self._withdraw()
        return self.tally

    def _reject(self, record: Record, e: RecordRejected, errors: list[RowError]) -> None:
        t = self.tally
        t.invalid += 1
        found = [RowError(record.row, column, message) for column, message in e.problems]
        errors.extend(found)
        for err in found[: max(0, 20 - len(t.sample_errors))]:
            t.sample_errors.append({"row": err.row, "column": err.column, "message": err.message})

    def _unchanged(self, key: Key, seen: list[Key]) -> None:
        t = self.tally
        self.types_seen.add(key[0])
        t.unchanged += 1
        t.bump(key[0], "found")
        t.bump(key[0], "unchanged")
        seen.append(key)

    async def _prepare(self, records: list[Record], checkpoint: dict[str, Any] | None) -> _Pending:
        """Map a batch and keep what changed. A record the connector can fingerprint without
        mapping (a spreadsheet row) is skipped unmapped when its fingerprint is unchanged."""
        t, s = self.tally, self.scope
        prints = [self.connector.fingerprint(r) for r in records]
        looked = {(p[0], p[1]) for p in prints if p is not None}
        known = await self.store.known(s, list(looked))
        objects: dict[Key, tuple[dict[str, Any], str]] = {}
        pending = _Pending(checkpoint=checkpoint)
        for n, (record, fp) in enumerate(zip(records, prints, strict=True)):
            t.read += 1
            if fp is not None:
                before = known.get((fp[0], fp[1]))
                if before is not None and before.hash == fp[2]:
                    self._unchanged((fp[0], fp[1]), pending.seen)
                    continue
            try:
                changes = self.connector.map(record)
            except RecordRejected as e:
                self._reject(record, e, pending.errors)
                continue
            for change in changes:
                obj = change.object
                data = obj.model_dump(mode="json")
                key = (obj.objecttype, obj.id)
                same_row = fp is not None and key == (fp[0], fp[1])
                objects[key] = (data, fp[2] if same_row and fp is not None else content_hash(data))
            if n % 1000 == 999:
                await asyncio.sleep(0)  # let acknowledgements of the previous batch in
        extra = [k for k in objects if k not in looked]
        if extra:
            known.update(await self.store.known(s, extra))
        for (objecttype, object_id), (data, digest) in objects.items():
            before = known.get((objecttype, object_id))
            if before is not None and before.hash == digest:
                self._unchanged((objecttype, object_id), pending.seen)
                continue
            self.types_seen.add(objecttype)
            t.bump(objecttype, "found")
            generation = 0 if before is None else before.generation + 1
            t.bump(objecttype, "created" if before is None or before.hash is None else "updated")
            pending.events.append(vastgelegd_event(s.source, s.key, objecttype, data, digest, generation))
            pending.published.append(Published(objecttype, object_id, digest, generation))
        t.published += len(pending.events)
        pending.snapshot = (t.read, t.counts(), {k: dict(v) for k, v in t.per_type.items()})
        return pending

    async def _deliver(self, pending: _Pending) -> None:
        if pending.events:
            await self.event_log.publish(pending.events)  # returns once Kafka acknowledged all of them
        rows_read, counts, report = pending.snapshot
        await self.store.commit(
            self.scope,
            self.owner,
            BatchCommit(
                published=pending.published,
                seen=pending.seen if self.connector.full else (),
                run=self.run_id,
                checkpoint=pending.checkpoint,
                events=len(pending.events),
                rows_read=rows_read,
                counts=counts,
                report=report,
                errors=pending.errors,
            ),
        )

    async def _withdraw(self) -> None:
        t = self.tally
        if t.read > 0 and t.invalid == t.read:
            t.notes.append("no record was valid, so nothing was withdrawn")
            log.warning("withdrawal_skipped", source=self.scope.source, reason="no valid record")
            return
        types = self.connector.withdrawable_types()
        chosen = sorted(types if types is not None else self.types_seen)
        after: Key | None = None
        while True:
            page = await self.store.unseen(self.scope, self.run_id, chosen, after=after, limit=WITHDRAW_PAGE)
            if not page:
                break
            s = self.scope
            events = [ingetrokken_event(s.source, s.key, ot, oid, gen + 1) for (ot, oid), gen in page]
            await self.event_log.publish(events)
            published = [Published(ot, oid, None, gen + 1) for (ot, oid), gen in page]
            for (ot, _), _gen in page:
                t.bump(ot, "removed")
            t.withdrawn += len(page)
            await self.store.commit(
                s,
                self.owner,
                BatchCommit(
                    published=published,
                    run=self.run_id,
                    events=len(events),
                    rows_read=t.read,
                    counts=t.counts(),
                    report=t.per_type,
                ),
            )
            after = page[-1][0]
