"""One run of a pass-through connector: items → their own events, only when they changed.

The sibling of :class:`hub.services.sync.SyncRun` for connectors whose records are not
landscape objects (a Signalen melding, a REST item mapped to an event type). Per batch: the
connector turns each record into an :class:`~connectors.base.Item`; items whose digest equals
what this scope published last are skipped; the others become the connector's event (it sees
the fields published last, to say what changed), are published and acknowledged, and only then
are their fingerprints *and fields* written with the checkpoint in one transaction. Event ids
are deterministic (scope, item, digest, generation), so a batch repeated after a crash is
absorbed by the projector's dedupe and never turns an item "new" twice.

While batch N is published and committed, batch N+1 is read (one batch ahead, as imports do).

An item whose event would break the limits every later stage has (KOPPELHUB_MAX_EVENT_BYTES,
:func:`schemas.limits.data_problem`: U+0000, lone surrogates, 64-bit integers, NaN, nesting) is
not published: it is a row error of the run naming the item and the reason, as a landscape
sync's row is (:mod:`hub.services.publishable`), and the batch's other items go on. The data
check of parsed data (:func:`schemas.limits.parsed_data_problem`) costs about 2 us of a
melding's ~80; the exact size is computed only where a sum of lengths says the event may come
near the limit.

A ``full`` connector with withdrawable kinds (publiccode: ``applicatie``) whose run read its
source whole withdraws the items of those kinds it published before and did not read (nor list
as ``present``) now, with the rule of :mod:`hub.services.withdrawal`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from connectors.base import Batch, Connector, Item, RecordRejected
from connectors.events import passthrough_event, passthrough_problem, passthrough_record, passthrough_size
from connectors.ids import event_id
from hub.ports import EventLog, RecordLog
from hub.ports.connectors import BatchCommit, FingerprintStore, Key, Owner, Published, RowError, SyncScope
from hub.services.collector import defer_full_collections
from hub.services.ownership import Stored
from hub.services.publishable import record_may_exceed, size_problem
from hub.services.sync_rows import Tally
from hub.services.withdrawal import withdraw_unseen
from schemas import CloudEvent
from schemas.bindings import KafkaRecord
from schemas.envelope import DEFAULT_MAX_EVENT_BYTES
from schemas.limits import data_problem, parsed_data_problem

log = structlog.get_logger(__name__)

Progress = Callable[[Tally], None]

_FIX = "shorten the item in the source, or raise KOPPELHUB_MAX_EVENT_BYTES"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A batch's events, as Kafka records when the log takes them, else as events."""

    events: list[CloudEvent]
    records: list[KafkaRecord]


class PassThroughRun:
    def __init__(
        self,
        connector: Connector[Any],
        scope: SyncScope,
        owner: Owner,
        store: FingerprintStore,
        event_log: EventLog,
        *,
        on_progress: Progress | None = None,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        stored: Stored | None = None,
    ) -> None:
        self.connector, self.scope, self.owner = connector, scope, owner
        self.stored = stored  # the landscape's objects: another organisation's, stated since, stays
        self.store, self.event_log = store, event_log
        self.on_progress = on_progress
        self.max_event_bytes = max_event_bytes
        self.run_id = uuid.uuid4()
        self.tally = Tally()

    async def execute(self, checkpoint: dict[str, Any] | None) -> Tally:
        """Run to the end (see :meth:`_execute`), with full collections deferred as a
        :class:`~hub.services.sync.SyncRun` does (:mod:`hub.services.collector`): a page of
        meldingen is tens of thousands of objects kept alive while it is published, and
        deferring the full collections they set off took a Signalen first sync from 100 to 83 us
        of CPU per melding (``python -m benchmarks.signalen``)."""
        with defer_full_collections():
            return await self._execute(checkpoint)

    async def _execute(self, checkpoint: dict[str, Any] | None) -> Tally:
        inflight: asyncio.Task[None] | None = None
        complete = False
        try:
            async for batch in self.connector.fetch(checkpoint):
                prepared = await self._prepare(batch, inflight)
                inflight = asyncio.create_task(self._deliver(*prepared))
                complete = complete or batch.complete
                if self.on_progress is not None:
                    self.on_progress(self.tally)
        finally:
            if inflight is not None:
                await inflight  # what was published is recorded, whatever happened since
        types = self.connector.withdrawable_types()
        if complete and self.connector.full and types:
            c, s, t = self.connector, self.scope, self.tally
            await withdraw_unseen(
                c, s, self.owner, self.store, self.event_log, self.run_id, t, types, self.stored
            )
        return self.tally

    def _items(self, batch: Batch, errors: list[RowError]) -> dict[Key, Item]:
        """The batch's valid items by key (a later record of the same item wins)."""
        items: dict[Key, Item] = {}
        t = self.tally
        for record in batch.records:
            try:
                item = self.connector.item(record)
            except RecordRejected as e:
                errors.extend(t.reject(record.row, e.problems))
                continue
            items[(item.kind, item.id)] = item
        return items

    async def _prepare(
        self, batch: Batch, inflight: asyncio.Task[None] | None
    ) -> tuple[Batch, Outgoing, list[Published], list[RowError], list[Key]]:
        errors: list[RowError] = []
        items = self._items(batch, errors)
        seen = [*items, *batch.present] if self.connector.full else []
        if inflight is not None:
            await inflight  # the previous batch's fingerprints must be known before comparing
        known = await self.store.known(self.scope, list(items), with_data=True)
        s, t = self.scope, self.tally
        # Written straight into the Kafka binding where the log takes records (every adapter):
        # the same bytes as to_kafka_record of the event, without building it (see
        # connectors.events.passthrough_record).
        as_records, parsed = isinstance(self.event_log, RecordLog), self.connector.parsed_data
        limit, org = self.max_event_bytes, s.organisatie
        check = parsed_data_problem if parsed else data_problem  # the same verdict, see there
        events: list[CloudEvent] = []
        records: list[KafkaRecord] = []
        published: list[Published] = []
        rejected: set[Key] = set()
        for key, item in items.items():
            before = known.get(key)
            if before is not None and before.hash == item.digest:
                t.unchanged += 1
                t.bump(item.kind, "found")
                t.bump(item.kind, "unchanged")
                continue
            generation = 0 if before is None else before.generation + 1
            attrs = self.connector.event(item, before.data if before is not None else None)
            source = attrs.pop("source", None) or s.source
            id_ = event_id(s.key, item.kind, item.id, item.digest, generation)
            # The limits every later stage has (see hub.services.publishable): the data first,
            # as a lone surrogate cannot even be written.
            problem = check(attrs.get("data")) or passthrough_problem(attrs, id=id_, source=source)
            if problem is None:
                if as_records:
                    record = passthrough_record(attrs, id=id_, source=source, organisatie=org, parsed=parsed)
                    if record_may_exceed(record, limit):
                        size = passthrough_size(attrs, id=id_, source=source, organisatie=org)
                        problem = size_problem(size, limit, _FIX)
                else:
                    event = passthrough_event(attrs, id=id_, source=source, organisatie=org)
                    size = passthrough_size(attrs, id=id_, source=source, organisatie=org)
                    problem = size_problem(size, limit, _FIX)
            if problem is not None:
                where = f"{item.kind} {item.id}" + (f", {problem[0]}" if problem[0] else "")
                errors.extend(t.reject(None, [(problem[0], f"{where}: {problem[1]}")]))
                rejected.add(key)
                continue
            if as_records:
                records.append(record)
            else:
                events.append(event)
            published.append(Published(item.kind, item.id, item.digest, generation, dict(item.fields)))
            t.bump(item.kind, "found")
            t.bump(item.kind, "created" if before is None else "updated")
        if rejected and seen:  # not read as it is now, as a rejected row of a landscape sync
            seen = [k for k in seen if k not in rejected]
        t.read += len(batch.records)
        errors += t.unreadable(batch.rejected)
        t.published += len(events) + len(records)
        return batch, Outgoing(events, records), published, errors, seen

    async def _deliver(
        self,
        batch: Batch,
        out: Outgoing,
        published: list[Published],
        errors: list[RowError],
        seen: list[Key],
    ) -> None:
        # Records grouped into one producer batch per partition (one acknowledgement each, not
        # one per event): a first sync publishes whole pages at once. Both return once the log
        # acknowledged them.
        if out.records:
            assert isinstance(self.event_log, RecordLog)  # only then are records made
            await self.event_log.publish_records(out.records)
        elif out.events:
            await self.event_log.publish(out.events)
        t = self.tally
        await self.store.commit(
            self.scope,
            self.owner,
            BatchCommit(
                published=published,
                seen=seen,
                run=self.run_id,
                checkpoint=batch.checkpoint,
                events=len(out.events) + len(out.records),
                rows_read=t.read,
                counts=t.counts(),
                report={k: dict(v) for k, v in t.per_type.items()},
                errors=errors,
            ),
        )
