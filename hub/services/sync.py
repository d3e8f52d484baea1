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

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from connectors.base import Connector, RecordRejected
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
        complete = False
        async for batch in self.connector.fetch(checkpoint):
            await self._batch(batch.records, batch.checkpoint)
            complete = complete or batch.complete
        if complete and self.connector.full:
            await self._withdraw()
        return self.tally

    def _map(self, records: list[Any]) -> tuple[dict[Key, tuple[dict[str, Any], str]], list[RowError]]:
        objects: dict[Key, tuple[dict[str, Any], str]] = {}
        errors: list[RowError] = []
        t = self.tally
        for record in records:
            t.read += 1
            try:
                changes = self.connector.map(record)
            except RecordRejected as e:
                t.invalid += 1
                found = [RowError(record.row, column, message) for column, message in e.problems]
                errors.extend(found)
                for err in found[: max(0, 20 - len(t.sample_errors))]:
                    t.sample_errors.append({"row": err.row, "column": err.column, "message": err.message})
                continue
            for change in changes:
                obj = change.object
                data = obj.model_dump(mode="json")
                objects[(obj.objecttype, obj.id)] = (data, content_hash(data))
        return objects, errors

    async def _batch(self, records: list[Any], checkpoint: dict[str, Any] | None) -> None:
        objects, errors = self._map(records)
        known = await self.store.known(self.scope, list(objects))
        events: list[CloudEvent] = []
        published: list[Published] = []
        seen: list[Key] = []
        t, s = self.tally, self.scope
        for (objecttype, object_id), (data, digest) in objects.items():
            self.types_seen.add(objecttype)
            t.bump(objecttype, "found")
            before = known.get((objecttype, object_id))
            if before is not None and before.hash == digest:
                t.unchanged += 1
                t.bump(objecttype, "unchanged")
                seen.append((objecttype, object_id))
                continue
            generation = 0 if before is None else before.generation + 1
            t.bump(objecttype, "created" if before is None or before.hash is None else "updated")
            events.append(vastgelegd_event(s.source, s.key, objecttype, data, digest, generation))
            published.append(Published(objecttype, object_id, digest, generation))
        if events:
            await self.event_log.publish(events)  # returns once Kafka acknowledged all of them
        t.published += len(events)
        await self.store.commit(
            s,
            self.owner,
            BatchCommit(
                published=published,
                seen=seen if self.connector.full else (),
                run=self.run_id,
                checkpoint=checkpoint,
                events=len(events),
                rows_read=t.read,
                counts=t.counts(),
                report=t.per_type,
                errors=errors,
            ),
        )
        if self.on_progress is not None:
            self.on_progress(t)

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
