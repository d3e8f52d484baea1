"""One run of a connector: map, keep only changes, publish, then record — batch by batch.

For each batch the connector yields: map every record (invalid ones become row errors),
compare each object's content hash with the fingerprint this scope published last, publish
the changed ones and wait for Kafka's acknowledgement, and only then write the new
fingerprints together with the owner's progress (connector checkpoint, import counts) in one
transaction. A crash between publish and commit repeats that batch with the same event ids
(same fingerprint generation), which the projector's dedupe absorbs.

A ``full`` run that read its source to the end withdraws (``ingetrokken``) the objects of the
withdrawable types that it did not read (:mod:`hub.services.withdrawal`; objects a batch lists
as ``present``, an id sweep, count as read) — unless no record at all was valid, which is far
more likely a wrong file than an empty landscape. An invalid record is read too: the object it
names (its fingerprint key, or the objects it mapped to) is not withdrawn, and a record whose
object cannot be told (no id, or an item that is no record at all) holds back every withdrawal
of the run, unless the source listed what it holds by id (a sweep): a row with a typo must not
withdraw the object it stands for.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import structlog

from connectors.base import Batch, Connector, Record
from connectors.events import vastgelegd_record, vastgelegd_size
from connectors.mapping import MappedObject, Outcome, map_records
from hub.ports import EventLog, RecordLog
from hub.ports.connectors import (
    BatchCommit,
    Fingerprint,
    FingerprintStore,
    Key,
    Owner,
    Published,
    RowError,
    SyncScope,
)
from hub.services.collector import defer_full_collections, freeze_start_up_heap
from hub.services.ownership import (
    Numbers,
    OthersKept,
    Owners,
    Stored,
    foreign_objects,
    foreign_problem,
    organisatie_header,
    taken_numbers,
)
from hub.services.publishable import ENVELOPE_MARGIN, size_problem
from hub.services.source_owners import SourceIndex
from hub.services.sync_rows import Progress, Tally, repeated
from hub.services.withdrawal import withdraw_unseen
from schemas.bindings import KafkaRecord, from_kafka_record
from schemas.envelope import DEFAULT_MAX_EVENT_BYTES

log = structlog.get_logger(__name__)

#: Fewer records to map than this in a batch are mapped in this process, not in the worker.
OFFLOAD_MIN = 1000
#: Records handled on the event loop between two yields to its other tasks: a batch of 5,000
#: in one go held the loop ~50-150 ms on a busy 2-core machine (the reader thread shares the GIL).
LOOP_SLICE = 1000

Print = tuple[str, str, str]  # a record's (objecttype, object id, digest), see Connector.fingerprint


_FIX = "shorten its cells"  # what a too large landscape object's row needs


@dataclass
class _Pending:
    """A mapped batch waiting to be published and committed."""

    checkpoint: dict[str, Any] | None
    complete: bool = False
    records: list[KafkaRecord] = field(default_factory=list)
    published: list[Published] = field(default_factory=list)
    seen: list[Key] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    snapshot: tuple[int, dict[str, int], dict[str, dict[str, int]]] = (0, {}, {})


@dataclass
class _Looked:
    """A batch read, fingerprinted and looked up, with the mapping of its changed records under way."""

    batch: Batch
    looked: set[Key]
    known: dict[Key, Fingerprint]
    unchanged: list[Key]  # rows skipped unmapped: their fingerprint is the one stored
    skipped: dict[Key, int | None]  # where each of them is (its first row)
    changed: list[tuple[Record, Print | None]]  # the rows being mapped (with their fingerprint), in order
    mapping: asyncio.Future[list[Outcome]]


class SyncRun:
    """Runs one connector once against the event log and the fingerprint store.

    ``executor`` (a factory, called once when first needed) is where batches with at least
    ``offload_min`` records to map are mapped and serialised, when the connector offers a
    picklable :meth:`Connector.mapper`: a one-worker process pool puts an import on two cores.

    ``max_event_bytes`` is the publish limit (KOPPELHUB_MAX_EVENT_BYTES): a record whose event
    would exceed it is a row error, as a publish of it would be a 413 (finding: one 10 KB
    spreadsheet made a 5 MB event, a 147 KB one a 140 MB event PostgreSQL refused for ever).
    """

    def __init__(
        self,
        connector: Connector[Any],
        scope: SyncScope,
        owner: Owner,
        store: FingerprintStore,
        event_log: EventLog,
        *,
        on_progress: Progress | None = None,
        executor: Callable[[], Executor] | None = None,
        offload_min: int = OFFLOAD_MIN,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        owners: Owners | None = None,
        numbers: Numbers | None = None,
        stored: Stored | None = None,
        force: bool = False,
    ) -> None:
        self.owners, self.force = owners, force  # force: publish every row, whatever the fingerprints
        self.stored = stored  # the landscape's objects: another organisatie's stays as its source left it
        self.others = OthersKept()
        self._read_numbers = numbers  # the organisaties' numbers: a row may not give another's
        self._numbers: SourceIndex | None = None  # read at the first batch that asks, once a run
        self.connector, self.scope, self.owner = connector, scope, owner
        self.store, self.event_log = store, event_log
        self.on_progress = on_progress
        self.executor, self.offload_min = executor, offload_min
        self.max_event_bytes = max_event_bytes
        self.mapper = connector.mapper() if executor is not None else None
        self._pool: Executor | None = None
        self.run_id = uuid.uuid4()
        self.tally = Tally()
        self.types_seen: set[str] = set()
        #: Whether the source listed what it holds by id (Batch.present, a sweep): then a run
        #: whose records were all invalid still knows what is gone.
        self.swept = False
        #: Where the first invalid record that names no object stood: it may stand for any
        #: object, so the run withdraws nothing (see the module docstring).
        self.unknown_invalid: str | None = None
        #: The organisation whose objects alone this run records (None: a hub-wide kind).
        self._own = None if connector.hub_wide else scope.organisatie

    async def execute(self, checkpoint: dict[str, Any] | None) -> Tally:
        """Run to the end (see :meth:`_execute`), with full collections deferred."""
        freeze_start_up_heap()
        with defer_full_collections():
            return await self._execute(checkpoint)

    async def _execute(self, checkpoint: dict[str, Any] | None) -> Tally:
        """Read, map and publish every batch, as a pipeline: while batch N is mapped (in the
        worker, if any), batch N+1 is looked up while batch N+2 is read and fingerprinted, and
        batch N-1 waits for its acknowledgement. A lookup runs after every commit but the
        previous batch's (as before the pipeline), and commits stay in batch order."""
        complete = False
        inflight: asyncio.Task[None] | None = None
        ahead: asyncio.Task[_Looked] | None = None
        try:
            async for batch in self.connector.fetch(checkpoint):
                prints = await self._fingerprints(batch.records)
                if inflight is not None:
                    await inflight
                    inflight = None
                # Looked up (and handed to the worker) while the next batch is read.
                previous, ahead = ahead, asyncio.create_task(self._look(batch, prints))
                if previous is not None:
                    pending = await self._prepare(await previous)
                    inflight = asyncio.create_task(self._deliver(pending))
                    complete = complete or pending.complete
                if self.on_progress is not None:
                    self.on_progress(self.tally)
            if ahead is not None:
                pending = await self._prepare(await ahead)
                ahead = None
                if inflight is not None:
                    await inflight
                inflight = asyncio.create_task(self._deliver(pending))
                complete = complete or pending.complete
        finally:
            if ahead is not None:  # read but not published: as if never read
                ahead.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    (await ahead).mapping.cancel()
            if inflight is not None:
                await inflight  # what was published is recorded, whatever happened since
        if complete and self.connector.full:
            await self._withdraw()
        if note := self.others.note():
            self.tally.notes.append(note)
        return self.tally

    def _reject(
        self,
        record: Record,
        problems: list[tuple[str, str]],
        pending: _Pending,
        mapped: list[MappedObject] | None = None,
        named: Print | None = None,
    ) -> None:
        """Count ``record`` invalid, and keep the objects it names (those it ``mapped`` to, else
        its fingerprint's) from being withdrawn."""
        pending.errors.extend(self.tally.reject(record.row, problems))
        if mapped:
            pending.seen.extend((m[0], m[1]) for m in mapped)
            return
        if named is not None:
            pending.seen.append((named[0], named[1]))
        elif self.unknown_invalid is None:
            self.unknown_invalid = "a record" if record.row is None else f"row {record.row}"

    def _too_large(self, mapped: list[MappedObject]) -> list[tuple[str, str]] | None:
        """The size problem of a record whose event would break the publish limit, if any."""
        limit, source = self.max_event_bytes, self.scope.source
        for objecttype, object_id, _, data in mapped:
            if 2 * len(data) + len(source) + ENVELOPE_MARGIN <= limit:
                continue  # the subject (the id) is at most as long as the data
            problem = size_problem(vastgelegd_size(source, objecttype, object_id, data, limit), limit, _FIX)
            if problem is not None:
                return [problem]
        return None

    async def _fingerprints(self, records: list[Record]) -> list[Print | None]:
        prints: list[Print | None] = []
        for start in range(0, len(records), LOOP_SLICE):
            if start:
                await asyncio.sleep(0)
            prints += [self.connector.fingerprint(r) for r in records[start : start + LOOP_SLICE]]
        return prints

    async def _look(self, batch: Batch, prints: list[Print | None]) -> _Looked:
        """Look a batch's fingerprints up and start mapping the records that changed. A record
        the connector can fingerprint without mapping (a spreadsheet row) is skipped unmapped
        when its fingerprint is unchanged."""
        looked = {(p[0], p[1]) for p in prints if p is not None}
        known = await self.store.known(self.scope, list(looked))
        items: list[tuple[Record, Print | None]] = []
        unchanged: list[Key] = []
        skipped: dict[Key, int | None] = {}  # the row of each, for a row error naming it
        # Decided once here; _prepare takes the verdicts instead of looking every row up again.
        for r, fp in zip(batch.records, prints, strict=True):
            if fp is not None and not self.force:
                before = known.get(key := (fp[0], fp[1]))
                if before is not None and before.hash == fp[2]:
                    unchanged.append(key)
                    skipped.setdefault(key, r.row)
                    continue
            items.append((r, fp))
        loop = asyncio.get_running_loop()
        if self.mapper is not None and self.executor is not None and len(items) >= self.offload_min:
            if self._pool is None:
                self._pool = self.executor()
            mapping = loop.run_in_executor(self._pool, map_records, self.mapper, items, self._own)
        else:
            outcomes: list[Outcome] = []
            for start in range(0, len(items), LOOP_SLICE):
                if start:
                    await asyncio.sleep(0)  # let acknowledgements of the previous batch in
                outcomes += map_records(self.connector.map, items[start : start + LOOP_SLICE], self._own)
            mapping = loop.create_future()
            mapping.set_result(outcomes)
        return _Looked(batch, looked, known, unchanged, skipped, items, mapping)

    async def _prepare(self, b: _Looked) -> _Pending:
        """Take a batch's mapped records and keep what changed, as Kafka records.

        Runs once per batch with a loop per row: what is the same for the whole batch (scope,
        size margin, the organisatie header) is computed here once, not per row."""
        t, s, force = self.tally, self.scope, self.force
        pending = _Pending(checkpoint=b.batch.checkpoint, complete=b.batch.complete)
        seen, known, counts = pending.seen, b.known, Counter[tuple[str, str]]()
        seen += b.unchanged
        seen += b.batch.present
        self.swept = self.swept or bool(b.batch.present)
        counts.update((k[0], "unchanged") for k in b.unchanged)
        valid: list[tuple[Record, list[MappedObject]]] = []
        margin, limit = len(s.source) + ENVELOPE_MARGIN, self.max_event_bytes
        for n, ((record, fp), (mapped, problems)) in enumerate(zip(b.changed, await b.mapping, strict=True)):
            if n and n % LOOP_SLICE == 0:
                await asyncio.sleep(0)  # other tasks of the loop (API, projector) run in between
            if problems is None:
                for m in mapped:  # the exact size only where the quick bound may break the limit
                    if 2 * len(m[3]) + margin > limit:
                        problems = self._too_large(mapped)
                        break
            if problems is not None:
                self._reject(record, problems, pending, mapped, fp)
                continue
            valid.append((record, mapped))
        flat = [m for _, ms in valid for m in ms]
        foreign = await foreign_objects(self.owners, s.organisatie, (m[:2] for m in flat))
        numbers = self._numbers_once if self._read_numbers is not None else None
        numbered = await taken_numbers(numbers, flat)
        kept = await self.others.find(self.stored, s.organisatie, s.source, flat)  # left as they are
        objects: dict[Key, MappedObject] = {}
        rows = dict(b.skipped)
        for record, mapped in valid:
            if foreign or numbered:
                keys = [(m[0], m[1]) for m in mapped]
                problems = [foreign_problem(k, foreign[k], s.organisatie) for k in keys if k in foreign]
                problems += [problem for k in keys for problem in numbered.get(k, ())]
                if problems:
                    self._reject(record, problems, pending, mapped)
                    continue
            if kept and (left := [m for m in mapped if (m[0], m[1]) in kept]):
                seen += [(m[0], m[1]) for m in left]
                counts.update((m[0], "unchanged") for m in left)
                mapped = [m for m in mapped if (m[0], m[1]) not in kept]
            if again := repeated(mapped, objects, b.skipped, rows):
                self._reject(record, again, pending, mapped)
                continue
            for m in mapped:
                objects[key := (m[0], m[1])] = m
                rows.setdefault(key, record.row)
        t.read += len(b.batch.records)
        pending.errors += t.unreadable(b.batch.rejected)
        if b.batch.rejected and self.unknown_invalid is None:
            first = b.batch.rejected[0].row
            self.unknown_invalid = "an item that is not a record" if first is None else f"item {first}"
        extra = [k for k in objects if k not in b.looked]
        if extra:
            known.update(await self.store.known(s, extra))
        source, scope, records, published = s.source, s.key, pending.records, pending.published
        stamp = (organisatie_header(s.organisatie),)
        for n, (key, (objecttype, object_id, digest, data)) in enumerate(objects.items()):
            if n and n % LOOP_SLICE == 0:
                await asyncio.sleep(0)
            before = known.get(key)
            if before is None:
                generation, what = 0, "created"
            elif before.hash == digest and not force:
                seen.append(key)
                counts[objecttype, "unchanged"] += 1
                continue
            else:
                generation, what = before.generation + 1, "created" if before.hash is None else "updated"
            counts[objecttype, what] += 1
            kafka = vastgelegd_record(source, scope, objecttype, object_id, data, digest, generation, stamp)
            records.append(kafka)
            published.append(Published(objecttype, object_id, digest, generation))
        for (objecttype, what), n in counts.items():
            self.types_seen.add(objecttype)
            t.bump(objecttype, "found", n)
            t.bump(objecttype, what, n)
            if what == "unchanged":
                t.unchanged += n
        t.published += len(records)
        pending.snapshot = (t.read, t.counts(), {k: dict(v) for k, v in t.per_type.items()})
        return pending

    async def _publish(self, records: list[KafkaRecord]) -> None:
        if isinstance(self.event_log, RecordLog):
            await self.event_log.publish_records(records)  # returns once Kafka acknowledged all of them
        else:
            await self.event_log.publish([from_kafka_record(r.key, r.value, r.headers) for r in records])

    async def _deliver(self, pending: _Pending) -> None:
        if pending.records:
            await self._publish(pending.records)
        rows_read, counts, report = pending.snapshot
        await self.store.commit(
            self.scope,
            self.owner,
            BatchCommit(
                published=pending.published,
                seen=pending.seen if self.connector.full else (),
                run=self.run_id,
                checkpoint=pending.checkpoint,
                events=len(pending.records),
                rows_read=rows_read,
                counts=counts,
                report=report,
                errors=pending.errors,
            ),
        )

    async def _numbers_once(self) -> SourceIndex:
        """The organisaties' numbers, read once a run: a connector's pages would each read every
        organisatie again (what this run publishes is not projected before it ends anyway)."""
        if self._numbers is None:
            assert self._read_numbers is not None
            self._numbers = await self._read_numbers()
        return self._numbers

    async def _withdraw(self) -> None:
        t = self.tally
        if t.read > 0 and t.invalid == t.read and not self.swept:
            t.notes.append("no record was valid, so nothing was withdrawn")
            log.warning("withdrawal_skipped", source=self.scope.source, reason="no valid record")
            return
        if self.unknown_invalid is not None and not self.swept:
            t.notes.append(
                f"{self.unknown_invalid} could not be read as an object (see the errors), so nothing "
                "was withdrawn: correct it and run again"
            )
            log.warning("withdrawal_skipped", source=self.scope.source, reason="invalid, no object")
            return
        types = self.connector.withdrawable_types()
        chosen = types if types is not None else self.types_seen
        run, s, log_ = self.run_id, self.scope, self.event_log
        await withdraw_unseen(self.connector, s, self.owner, self.store, log_, run, t, chosen, self.stored)
