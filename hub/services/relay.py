"""One run of a relaying connector: whole CloudEvents from elsewhere, published as they are.

The third sibling of :class:`hub.services.sync.SyncRun` and
:class:`hub.services.passthrough.PassThroughRun`, for connectors whose records already are
events with their own ``source`` and ``id`` (hub-to-hub federation, ``connectors.koppelhub``):
the runner must not mint new ones, or the projector's dedupe on source+id would no longer hold
from one hub to the next. Per batch: every record's ``data`` is checked as a CloudEvent (the
envelope and this hub's KOPPELHUB_MAX_EVENT_BYTES; a bad one is a row error, the others go
through), the events are published and acknowledged, and only then is the batch's checkpoint
committed. No fingerprints: an event published twice (a batch repeated after a crash, or the
same event reaching this hub along two paths) is absorbed by the projector's dedupe.

While batch N is published and committed, batch N+1 is read (one batch ahead, as imports do).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson

from connectors.base import Batch, Connector
from hub.ports import EventLog, RecordLog
from hub.ports.connectors import BatchCommit, FingerprintStore, Owner, RowError, SyncScope
from hub.services.sync_rows import Progress, Tally
from schemas import CloudEvent
from schemas.bindings import to_kafka_record
from schemas.envelope import EnvelopeError, validate_event

__all__ = ["RelayRun"]


class RelayRun:
    def __init__(
        self,
        connector: Connector[Any],
        scope: SyncScope,
        owner: Owner,
        store: FingerprintStore,
        event_log: EventLog,
        *,
        max_event_bytes: int,
        on_progress: Progress | None = None,
    ) -> None:
        self.connector, self.scope, self.owner = connector, scope, owner
        self.store, self.event_log = store, event_log
        self.max_event_bytes = max_event_bytes
        self.on_progress = on_progress
        self.run_id = uuid.uuid4()
        self.tally = Tally()

    async def execute(self, checkpoint: dict[str, Any] | None) -> Tally:
        inflight: asyncio.Task[None] | None = None
        try:
            async for batch in self.connector.fetch(checkpoint):
                events, errors = self._events(batch)
                if inflight is not None:
                    await inflight  # checkpoints are committed in order
                inflight = asyncio.create_task(self._deliver(batch, events, errors))
                if self.on_progress is not None:
                    self.on_progress(self.tally)
        finally:
            if inflight is not None:
                await inflight  # what was published is recorded, whatever happened since
        return self.tally

    def _events(self, batch: Batch) -> tuple[list[CloudEvent], list[RowError]]:
        events: list[CloudEvent] = []
        errors: list[RowError] = []
        t = self.tally
        for record in batch.records:
            raw = record.data
            try:
                size = len(orjson.dumps(raw))
                if size > self.max_event_bytes:
                    raise ValueError(
                        f"event is {size} bytes, more than this hub's limit of {self.max_event_bytes} "
                        "bytes (KOPPELHUB_MAX_EVENT_BYTES)"
                    )
                event = validate_event(dict(raw))
            except (EnvelopeError, ValueError, TypeError) as e:
                problem = f"event {raw.get('id')!r} from {raw.get('source')!r}: {e}"
                errors += t.reject(record.row, [("", problem)])
                continue
            events.append(event)
            t.bump(event.type, "found")
        t.read += len(batch.records)
        errors += t.unreadable(batch.rejected)
        t.published += len(events)
        return events, errors

    async def _deliver(self, batch: Batch, events: list[CloudEvent], errors: list[RowError]) -> None:
        if events:
            if isinstance(self.event_log, RecordLog):
                await self.event_log.publish_records([to_kafka_record(e) for e in events])
            else:
                await self.event_log.publish(events)  # both return once the log acknowledged them
        t = self.tally
        await self.store.commit(
            self.scope,
            self.owner,
            BatchCommit(
                run=self.run_id,
                checkpoint=batch.checkpoint,
                events=len(events),
                rows_read=t.read,
                counts=t.counts(),
                report={k: dict(v) for k, v in t.per_type.items()},
                errors=errors,
            ),
        )
