"""The hub's status as operators read it (``GET /api/v1/status``, ``koppelhub status``).

One document from the two operator ports, read side by side: the log (lag per partition, the
projector's members, the DLQ) and the store (outbox, subscriptions, connectors, imports).
When the broker cannot be read the store's half still answers and ``log`` says why.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from hub.errors import RetriableError
from hub.ports.members import MemberRegistry, RecordedMember
from hub.ports.operators import (
    DeadLetter,
    GroupMember,
    LogInspector,
    LogStatus,
    OperationsStore,
    Redriven,
    StoreStatus,
)

__all__ = [
    "LOG_STATUS_TTL",
    "dead_letter_document",
    "forget_log_status",
    "hub_status",
    "orphaned_records",
    "redriven_document",
    "shared_log_status",
    "status_document",
    "with_recorded_partitions",
]


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


#: How long one read of the log (end offsets, committed offsets, members, DLQ count: several
#: broker round trips) serves the status calls that follow it.
LOG_STATUS_TTL = 1.0

# One entry per log inspector: when its read started (monotonic) and the read itself.
_log_reads: weakref.WeakKeyDictionary[LogInspector, tuple[float, asyncio.Task[LogStatus]]] = (
    weakref.WeakKeyDictionary()
)


async def shared_log_status(log: LogInspector, *, ttl: float = LOG_STATUS_TTL) -> LogStatus:
    """The log's status, read at most once per ``ttl`` seconds per inspector: concurrent status
    calls await the one read in flight and the calls within ``ttl`` after it reuse its answer
    (lag a second old is still the lag an operator acts on; the broker is spared a burst of
    ListOffsets/OffsetFetch/DescribeGroups per dashboard refresh). A failed read is not kept."""
    now = time.monotonic()
    entry = _log_reads.get(log)
    if entry is not None:
        started, task = entry
        fresh = now - started < ttl
        if not task.done() or (fresh and not task.cancelled() and task.exception() is None):
            return await asyncio.shield(task)
    task = asyncio.ensure_future(log.status())
    _log_reads[log] = (now, task)
    return await asyncio.shield(task)


def forget_log_status(log: LogInspector) -> None:
    """Drop the kept read of ``log`` (after a redrive: the next status reads the log again)."""
    _log_reads.pop(log, None)


async def hub_status(
    log: LogInspector, store: OperationsStore, members: MemberRegistry | None = None
) -> dict[str, Any]:
    """Read both halves concurrently (the log's through :func:`shared_log_status`), with the
    members' own records of their partitions where ``members`` is given, and assemble the
    document."""
    recorded: Awaitable[list[RecordedMember]] = members.recorded() if members else _nothing()
    log_part, store_part, records = await asyncio.gather(
        shared_log_status(log), store.status(), recorded, return_exceptions=True
    )
    if isinstance(store_part, BaseException):
        raise store_part
    if isinstance(log_part, RetriableError):
        return status_document(None, store_part, log_error=str(log_part))
    if isinstance(log_part, BaseException):
        raise log_part
    if isinstance(records, RetriableError):  # the database hiccuped: the broker's view only
        records = []
    if isinstance(records, BaseException):
        raise records
    if members is not None:
        await _forget_the_dead(members, orphaned_records(log_part, records, store_part.now))
    return status_document(with_recorded_partitions(log_part, records), store_part)


#: A record the broker's members do not account for is deleted once it is this old: its
#: consumer died without forgetting it (a member between revoke and assignment may be unlisted
#: for a moment, and its assignment writes its record anew anyway).
ORPHANED_AFTER = timedelta(minutes=1)


def orphaned_records(log: LogStatus, records: Sequence[RecordedMember], now: datetime) -> list[str]:
    """The client ids of this group's records that no live member owns and that were last
    written more than :data:`ORPHANED_AFTER` before ``now`` (the store's clock)."""
    mine = {r.client_id: r for r in records if r.group == log.group and r.topic == log.topic}
    owned = {found.client_id for m in log.members if (found := _record_of(m, mine)) is not None}
    return [c for c, r in mine.items() if c not in owned and now - r.updated_at > ORPHANED_AFTER]


async def _forget_the_dead(members: MemberRegistry, client_ids: list[str]) -> None:
    """Delete the records of consumers that died (rare: a crash); a failure is retried by the
    next status call."""
    for client_id in client_ids:
        try:
            await members.forget(client_id)
        except RetriableError:
            return


async def _nothing() -> list[RecordedMember]:
    return []


def with_recorded_partitions(log: LogStatus, records: Sequence[RecordedMember]) -> LogStatus:
    """``log`` with each live member's partitions, host and pid taken from its own record where
    the broker reported none (Tansu never does).

    The broker decides who is a member: a record whose consumer is not among the broker's live
    members (it died without forgetting its record, or left after this look) is ignored, so a
    member that left never shows (:func:`orphaned_records` finds the dead ones' records). A
    record belongs to a member when the broker reports the record's client id, or (Tansu
    reports none) when the member id is that client id followed by the broker's dash-separated
    suffix; projector client ids are unique per consumer."""
    mine = {r.client_id: r for r in records if r.group == log.group and r.topic == log.topic}
    if not mine:
        return log
    members = []
    for m in log.members:
        r = _record_of(m, mine)
        if r is not None and not m.partitions:
            m = replace(
                m, client_id=m.client_id or r.client_id, host=m.host or r.host, partitions=r.partitions
            )
        members.append(replace(m, pid=r.pid) if r is not None else m)
    return replace(log, members=tuple(members))


def _record_of(member: GroupMember, records: dict[str, RecordedMember]) -> RecordedMember | None:
    """The record of ``member`` by its client id, or by the longest dash-separated start of its
    member id that names a record (Tansu's member ids: the client id, a dash and a UUID)."""
    if member.client_id:
        return records.get(member.client_id)
    prefix = member.member_id
    found = records.get(prefix)
    while found is None and "-" in prefix:
        prefix = prefix.rsplit("-", 1)[0]
        found = records.get(prefix)
    return found


def status_document(
    log: LogStatus | None, store: StoreStatus, *, log_error: str | None = None
) -> dict[str, Any]:
    """The JSON document of ``GET /api/v1/status`` (camelCase, times in ISO 8601)."""
    oldest = store.oldest_pending
    doc: dict[str, Any] = {"time": store.now.isoformat()}
    if log is None:
        doc["log"] = {"error": log_error}
        doc["dlq"] = {"error": log_error}
    else:
        lag_of = {p.partition: p.lag for p in log.partitions}
        doc["log"] = {
            "topic": log.topic,
            "group": log.group,
            "groupState": log.group_state,
            "lag": log.lag,
            "partitions": [
                {"partition": p.partition, "endOffset": p.end_offset, "committed": p.committed, "lag": p.lag}
                for p in log.partitions
            ],
            "members": [
                {
                    "memberId": m.member_id,
                    "clientId": m.client_id,
                    "host": m.host,
                    "pid": m.pid,
                    "partitions": list(m.partitions),
                    # the lag of the partitions it owns, so an operator sees which member is behind
                    "lag": sum(lag_of.get(p, 0) for p in m.partitions),
                }
                for m in log.members
            ],
        }
        doc["dlq"] = {"topic": log.dlq_topic, "records": log.dlq_records}
    doc["outbox"] = {
        **store.outbox,
        "oldestPending": _time(oldest),
        "oldestPendingAgeSeconds": round((store.now - oldest).total_seconds(), 3) if oldest else None,
        # the counts that are the planner's estimate (a backlog above the store's exact limit)
        "estimated": list(store.estimated),
    }
    doc["subscriptions"] = {
        "byStatus": store.subscriptions,
        "failing": [
            {
                "id": str(s.id),
                "sink": s.sink,
                "status": s.status,
                "statusReason": s.status_reason,
                "failingSince": _time(s.failing_since),
                "consecutiveFailures": s.consecutive_failures,
                "lastError": s.last_error,
            }
            for s in store.failing_subscriptions
        ],
    }
    doc["connectors"] = {
        **store.connectors,
        "failingConnectors": [
            {
                "id": str(c.id),
                "kind": c.kind,
                "organisatie": c.organisatie,
                "failures": c.failures,
                "lastError": c.last_error,
                "lastRunAt": _time(c.last_run_at),
            }
            for c in store.failing_connectors
        ],
    }
    doc["imports"] = {
        "byStatus": store.imports,
        "running": store.imports.get("running", 0),
        "queued": store.imports.get("queued", 0),
        "failed": store.imports.get("failed", 0),
        "failedImports": [
            {
                "id": str(i.id),
                "organisatie": i.organisatie,
                "objecttype": i.objecttype,
                "filename": i.filename,
                "error": i.error,
                "finishedAt": _time(i.finished_at),
            }
            for i in store.failed_imports
        ],
    }
    return doc


def dead_letter_document(d: DeadLetter) -> dict[str, Any]:
    """One item of ``GET /api/v1/dlq``: the record's place, its parking headers by their own
    names, and the event as far as it decodes."""
    return {
        "id": f"{d.partition}:{d.offset}",
        "partition": d.partition,
        "offset": d.offset,
        "time": _time(d.timestamp),
        "key": d.key,
        "koppelhub_error": d.error,
        "koppelhub_error_class": d.error_class,
        "koppelhub_origin": d.origin,
        "event": d.event,
        "decodeError": d.decode_error,
    }


def redriven_document(done: Redriven) -> dict[str, Any]:
    return {
        "redriven": [{"partition": p.partition, "offset": p.offset} for p in done.redriven],
        "skipped": [{"partition": s.partition, "offset": s.offset, "reason": s.reason} for s in done.skipped],
    }
