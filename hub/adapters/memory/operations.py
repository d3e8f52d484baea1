"""In-memory twins of the operator ports (contract: ``tests/contract/test_operations.py``):
the status summary over :class:`InMemoryDatabase` and :class:`InMemoryConnectorTables`, and
the log inspector over :class:`InMemoryEventLog` (its dead-letter list is partition 0)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from hub.adapters.kafka_operators import dead_letter_of, original_headers
from hub.adapters.memory.connectors import InMemoryConnectorTables
from hub.adapters.memory.database import InMemoryDatabase
from hub.adapters.memory.log import InMemoryEventLog
from hub.ports.operators import (
    DeadLetterPage,
    FailedImport,
    FailingConnector,
    FailingSubscription,
    GroupMember,
    LogStatus,
    PartitionLag,
    Position,
    RecentAlert,
    Redriven,
    Skipped,
    StoreStatus,
)
from schemas import CloudEvent
from schemas.bindings import KafkaRecord
from schemas.hub_events import ALERTS
from subscriptions.lifecycle import DEAD, DISABLED, FAILED, OPEN, PENDING

__all__ = ["InMemoryLogInspector", "InMemoryOperationsStore"]


class InMemoryOperationsStore:
    def __init__(self, db: InMemoryDatabase, tables: InMemoryConnectorTables, *, exact_up_to: int = 10_000):
        self._db, self._t = db, tables
        self._exact_up_to = exact_up_to  # above it a count is marked estimated (here: still exact)

    async def status(self, *, failing_limit: int = 50) -> StoreStatus:
        db, now = self._db, self._db.clock()
        states = Counter(d.status for d in db.deliveries.values())
        open_rows = [d.created_at for d in db.deliveries.values() if d.status in OPEN]
        failing = []
        subs = sorted(
            (s for s in db.subscriptions.values() if s.failing_since is not None or s.status == DISABLED),
            key=lambda s: (s.failing_since is None, s.failing_since or now, s.updated_at),
        )
        for s in subs[:failing_limit]:  # health as the outcome recorder keeps it on the row
            failing.append(
                FailingSubscription(
                    s.id,
                    s.sink,
                    s.status,
                    s.failing_since,
                    s.consecutive_failures,
                    s.last_error,
                    s.status_reason,
                )
            )
        connectors = [h for h in self._t.connectors.values()]
        running = sum(1 for h in connectors if h.lease_until is not None and h.lease_until > now)
        queued = sum(
            1
            for h in connectors
            if h.record.enabled
            and h.record.polls
            and h.record.next_run_at <= now
            and (h.lease_until is None or h.lease_until <= now)
        )
        bad = sorted(
            (h.record for h in connectors if h.record.failures > 0),
            key=lambda r: (-r.failures, r.last_run_at or now),
        )
        imports = [h.record for h in self._t.imports.values()]
        failed = sorted(
            (r for r in imports if r.status == "failed"), key=lambda r: r.finished_at or now, reverse=True
        )
        return StoreStatus(
            outbox={"pending": states[PENDING], "failed": states[FAILED], "dead": states[DEAD]},
            estimated=tuple(s for s in (PENDING, FAILED, DEAD) if states[s] > self._exact_up_to),
            oldest_pending=min(open_rows, default=None),
            now=now,
            subscriptions=dict(Counter(s.status for s in db.subscriptions.values())),
            failing_subscriptions=failing,
            connectors={
                "total": len(connectors),
                "running": running,
                "failing": len(bad),
                "queued": queued,
            },
            failing_connectors=[
                FailingConnector(r.id, r.kind, r.organisatie, r.failures, r.last_error, r.last_run_at)
                for r in bad[:failing_limit]
            ],
            imports=dict(Counter(r.status for r in imports)),
            failed_imports=[
                FailedImport(r.id, r.organisatie, r.objecttype, r.filename, r.error, r.finished_at)
                for r in failed[:failing_limit]
            ],
        )

    async def recent_alerts(self, *, limit: int = 10) -> list[RecentAlert]:
        rows = [r for r in reversed(self._db.archive) if r.event.get("type") in ALERTS][:limit]
        events = [CloudEvent.model_validate(r.event) for r in rows]
        return [RecentAlert(e.type, e.subject, e.time, dict(e.data or {})) for e in events]


class InMemoryLogInspector:
    def __init__(self, log: InMemoryEventLog, *, group: str = "koppelhub-projector", dlq_topic: str = "dlq"):
        self._log, self._group, self._dlq_topic = log, group, dlq_topic

    async def status(self) -> LogStatus:
        committed = self._log.committed(self._group)
        members = tuple(
            GroupMember(f"member-{n}", "", "", owned)
            for n, owned in enumerate(self._log.assignments(self._group))
        )
        return LogStatus(
            topic=self._log.topic,
            group=self._group,
            group_state="Stable" if members else "Empty",
            partitions=tuple(
                PartitionLag(p, len(records), committed.get(p))
                for p, records in enumerate(self._log.partitions)
            ),
            members=members,
            dlq_topic=self._dlq_topic,
            dlq_records=len(self._log.dead_letters),
        )

    async def dead_letters(self, *, after: Position | None, limit: int) -> DeadLetterPage:
        start = (
            0
            if after is None
            else (after.offset + 1 if after.partition == 0 else len(self._log.dead_letters))
        )
        records = self._log.dead_letters[start : start + limit]
        items = [
            dead_letter_of(0, start + i, None, r.key, r.value or None, r.headers)
            for i, r in enumerate(records)
        ]
        more = start + limit < len(self._log.dead_letters)
        return DeadLetterPage(items, f"0:{start + limit - 1}" if more and items else None)

    async def redrive(self, positions: Sequence[Position] | None) -> Redriven:
        parked = self._log.dead_letters
        chosen = [Position(0, o) for o in range(len(parked))] if positions is None else list(positions)
        done = Redriven()
        out = []
        for p in chosen:
            if p.partition != 0 or not 0 <= p.offset < len(parked):
                done.skipped.append(Skipped(p.partition, p.offset, "no such record in the DLQ"))
                continue
            r = parked[p.offset]
            if any(n == "koppelhub_value_dropped" for n, _ in r.headers):
                done.skipped.append(Skipped(p.partition, p.offset, "parked without its value"))
                continue
            out.append(KafkaRecord(r.key, r.value, original_headers(r.headers)))
            done.redriven.append(p)
        await self._log.publish_records(out)
        return done
