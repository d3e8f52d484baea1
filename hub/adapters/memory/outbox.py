"""In-memory twins of the outbox and the delivery store (contracts: ``tests/contract/
test_outbox.py`` and ``test_deliveries.py``). They execute :mod:`subscriptions.lifecycle`
row by row where the PostgreSQL adapter runs it set-based."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from hub.adapters.memory.audit import InMemoryAuditLog
from hub.adapters.memory.database import DeliveryRow, InMemoryDatabase, SubscriptionRow
from hub.errors import NotFound
from hub.ports import AttemptResult, ClaimedDelivery, PulledPage
from hub.ports.audit import AuditEntry
from schemas import CloudEvent
from schemas.credentials import redact_url
from schemas.hub_events import DELIVERY_DEAD, SUBSCRIPTION_DISABLED
from subscriptions import lifecycle as lc
from subscriptions.delivery import SharedEvent
from subscriptions.flow import FlowControl
from subscriptions.recipients import ORGANISATIE, event_attributes, receives

#: Archive rows one pull looks at, at most (as the PostgreSQL adapter).
PULL_SCAN_LIMIT = 10_000


def _rate(s: SubscriptionRow) -> float | None:
    """The lower of a subscription's ``maxRate`` and its sink's ``WebHook-Allowed-Rate``."""
    return min((r for r in (s.max_rate, s.allowed_rate) if r is not None), default=None)


class InMemoryOutbox:
    """Outbox operations for the dispatcher."""

    def __init__(
        self,
        db: InMemoryDatabase,
        *,
        source_urn: str = "urn:nld:oin:00000000000000000000:systeem:koppelhub",
        disable_after_seconds: float = 5 * 86_400.0,
        default_concurrency: int = 16,
        spare: bool = False,
    ):
        self._db = db
        self._spare = spare
        self._source_urn = source_urn
        self._disable_after = disable_after_seconds
        self._idle_room = FlowControl(default_concurrency).idle_room  # the rule claims.py's SQL applies

    def _claimable(self, s: SubscriptionRow, now: datetime) -> list[DeliveryRow]:
        mine = sorted(self._db.deliveries_of(s.id), key=lambda d: d.archive_seq)
        due = [
            d
            for d in mine
            if lc.is_due(d.status, d.next_attempt_at, now)
            and not (
                d.ordering_key is not None
                and any(
                    lc.blocked_by(e.status, e.ordering_key == d.ordering_key, s.ordering)
                    for e in mine
                    if e.archive_seq < d.archive_seq
                )
            )
        ]
        return sorted(due, key=lambda d: (d.next_attempt_at, d.archive_seq))

    def _room(self, s: SubscriptionRow, room: Mapping[uuid.UUID, int]) -> int:
        if s.id in room:
            return max(0, room[s.id])
        return self._idle_room(s.max_concurrency, _rate(s))

    async def claim(
        self, limit: int, lease_seconds: float, room: Mapping[uuid.UUID, int] | None = None
    ) -> list[ClaimedDelivery]:
        now = self._db.clock()
        picked: list[tuple[SubscriptionRow, DeliveryRow]] = []
        for s in list(self._db.subscriptions.values()):
            if s.status != lc.ACTIVE or (self._spare and FlowControl.own_limits(s.max_concurrency, _rate(s))):
                continue
            picked.extend((s, d) for d in self._claimable(s, now)[: self._room(s, room or {})])
        claimed: list[ClaimedDelivery] = []
        shared: dict[int, SharedEvent] = {}
        for s, d in picked[:limit]:
            d.next_attempt_at = now + timedelta(seconds=lease_seconds)  # the lease
            row = self._db.event(d.archive_seq)
            if d.archive_seq not in shared:  # one event object per claim, as PostgreSQL's
                shared[d.archive_seq] = SharedEvent(row.event)
            claimed.append(_claimed(s, d, shared[d.archive_seq], now, accepted_at=row.archived_at))
        claimed.sort(key=lambda c: c.archive_seq)
        return claimed

    async def next_due(self) -> datetime | None:
        due = [
            d.next_attempt_at
            for d in self._db.deliveries.values()
            if d.status in lc.OPEN and self._db.subscriptions[d.subscription_id].status == lc.ACTIVE
        ]
        return min(due, default=None)

    async def record(self, results: Sequence[AttemptResult]) -> bool:
        results = [r for r in results if r.delivery_id in self._db.deliveries]
        if not results:
            return False
        waiting = any(
            d.ordering_key == r.ordering_key and d.archive_seq > r.archive_seq and d.status in lc.OPEN
            for r in results
            if r.ordering_key is not None
            for d in self._db.deliveries_of(r.subscription_id)
        )
        now = self._db.clock()
        for r in results:
            self._db.attempts.setdefault(r.delivery_id, []).append(_attempt(r))
        alerts: list[CloudEvent] = []
        for r in results:
            # Like the PostgreSQL adapter, a failed head holds back its key even when its own
            # record came too late (another claim recorded meanwhile).
            if r.new_status == lc.FAILED and r.ordering_key is not None and r.next_attempt_at:
                self._hold_back(r, r.next_attempt_at)
            d = self._db.deliveries[r.delivery_id]
            if not lc.may_record(d.status, d.attempts, r.attempt):
                continue
            d.status, d.attempts, d.updated_at = r.new_status, r.attempt, now
            d.last_status_code, d.last_error = r.status_code, r.error
            if r.new_status != lc.DEAD:
                d.next_attempt_at = r.next_attempt_at or r.started_at
                d.delivered_at = r.started_at if r.new_status == lc.DELIVERED else None
            elif lc.alerts_dead(r.event_type):
                alerts.append(self._alert(DELIVERY_DEAD, r.subscription_id, _dead_data(r)))
        for r in results:
            if r.new_status == lc.DELIVERED:
                self._make_good(r.subscription_id, r.archive_seq, now)
        alerts.extend(self._health(results, now))
        self._db.publish(alerts)
        return waiting

    def _make_good(self, subscription_id: uuid.UUID, archive_seq: int, now: datetime) -> None:
        """lc.MADE_GOOD: the dead deliveries of the same event (archive row) to the subscription."""
        for d in self._db.deliveries_of(subscription_id):
            if d.archive_seq == archive_seq and d.status in lc.MADE_GOOD:
                d.status, d.delivered_at, d.updated_at = lc.DELIVERED, now, now

    def _hold_back(self, head: AttemptResult, until: datetime) -> None:
        for d in self._db.deliveries_of(head.subscription_id):
            if d.ordering_key == head.ordering_key and d.archive_seq > head.archive_seq:
                d.next_attempt_at = lc.held_until(d.status, d.next_attempt_at, until)

    def _health(self, results: Sequence[AttemptResult], now: datetime) -> list[CloudEvent]:
        ok = {r.subscription_id for r in results if r.new_status == lc.DELIVERED}
        bad = {r.subscription_id for r in results if r.new_status != lc.DELIVERED} - ok
        subs = self._db.subscriptions
        for sid in ok:
            subs[sid].mark_healthy()
        disabled: list[tuple[SubscriptionRow, str]] = []
        for r in results:
            s = subs[r.subscription_id]
            if r.disable_reason and s.status == lc.ACTIVE:
                s.status, s.status_reason, s.updated_at = lc.DISABLED, r.disable_reason, now
                disabled.append((s, r.disable_reason))
        reason = lc.failing_reason(self._disable_after)
        for sid in bad:
            s = subs[sid]
            failures = [r for r in results if r.subscription_id == sid]
            s.mark_failing(now, len(failures), failures[-1].error)
            if s.status == lc.ACTIVE and lc.failed_too_long(s.failing_since, now, self._disable_after):
                s.status, s.status_reason, s.updated_at = lc.DISABLED, reason, now
                disabled.append((s, reason))
        return [
            self._alert(
                SUBSCRIPTION_DISABLED,
                s.id,
                {"subscriptionId": str(s.id), "sink": redact_url(s.sink), "reason": why},
            )
            for s, why in disabled
            if lc.alerts_disabled(
                (r.event_type for r in results if r.subscription_id == s.id and r.new_status != lc.DELIVERED),
                delivered_some=s.id in ok,
            )
        ]

    def _alert(self, event_type: str, subscription_id: uuid.UUID, data: dict[str, Any]) -> CloudEvent:
        return CloudEvent(
            specversion="1.0",
            id=str(uuid.uuid4()),
            source=self._source_urn,
            type=event_type,
            subject=str(subscription_id),
            time=datetime.now(UTC),
            datacontenttype="application/json",
            data=data,
            **({ORGANISATIE: owner} if (owner := self._owner(subscription_id)) else {}),
        )

    def _owner(self, subscription_id: uuid.UUID) -> str | None:
        """An alert belongs to the organisation of the subscription it is about."""
        row = self._db.subscriptions.get(subscription_id)
        return row.organisatie if row is not None else None


def _claimed(
    s: SubscriptionRow,
    d: DeliveryRow,
    event: dict[str, Any],
    now: datetime,
    *,
    accepted_at: datetime | None = None,
) -> ClaimedDelivery:
    """``accepted_at``: the twin has no log timestamp; its archive time (on its own clock) stands in."""
    return ClaimedDelivery(
        id=d.id,
        subscription_id=s.id,
        attempts=d.attempts,
        event_id=d.event_id,
        archive_seq=d.archive_seq,
        event=event,
        sink=s.sink,
        secret=s.secret,
        headers=s.headers,
        retry_base=d.retry_base,
        ordering_key=d.ordering_key,
        previous_secret=s.previous_secret_now(now),
        retry_schedule=s.retry_schedule,
        ordering=s.ordering,
        max_concurrency=s.max_concurrency,
        max_rate=_rate(s),
        content_mode=s.content_mode,
        auth=s.auth,
        organisatie=s.organisatie,
        accepted_at=accepted_at,
    )


def _attempt(r: AttemptResult) -> dict[str, Any]:
    return {
        "attempt": r.attempt,
        "started_at": r.started_at,
        "duration_ms": r.duration_ms,
        "status_code": r.status_code,
        "error": r.error,
        "response_excerpt": r.response_excerpt,
    }


def _dead_data(r: AttemptResult) -> dict[str, Any]:
    return {
        "subscriptionId": str(r.subscription_id),
        "deliveryId": str(r.delivery_id),
        "eventId": r.event_id,
        "eventType": r.event_type,
        "sink": redact_url(r.sink),
        "attempts": r.attempt,
        "lastStatusCode": r.status_code,
        "lastError": r.error,
    }


class InMemoryDeliveryStore:
    """Operations on one subscription's deliveries and on the archive it matches."""

    def __init__(self, db: InMemoryDatabase, audit_log: InMemoryAuditLog | None = None):
        self._db = db
        self._audit = audit_log or InMemoryAuditLog()  # the twin of the audit table

    def _subscription(self, subscription_id: uuid.UUID) -> SubscriptionRow:
        row = self._db.subscriptions.get(subscription_id)
        if row is None:
            raise NotFound(f"subscription {subscription_id} does not exist")
        return row

    def _delivery(self, subscription_id: uuid.UUID, delivery_id: uuid.UUID) -> DeliveryRow:
        d = self._db.deliveries.get(delivery_id)
        if d is None or d.subscription_id != subscription_id:
            raise NotFound(f"delivery {delivery_id} of subscription {subscription_id} does not exist")
        return d

    async def retry(
        self, subscription_id: uuid.UUID, delivery_id: uuid.UUID, *, audit: AuditEntry | None = None
    ) -> str:
        d = self._delivery(subscription_id, delivery_id)
        now = self._db.clock()
        d.status, d.next_attempt_at, d.retry_base, d.updated_at = lc.RETRY_STATUS, now, d.attempts, now
        if d.ordering_key is not None:
            for e in self._db.deliveries_of(subscription_id):
                if e.ordering_key == d.ordering_key and e.archive_seq > d.archive_seq:
                    e.next_attempt_at = lc.released(e.status, e.next_attempt_at, now)
        self._audit.append(audit)
        return d.status

    async def attempts(self, subscription_id: uuid.UUID, delivery_id: uuid.UUID) -> list[dict[str, Any]]:
        self._delivery(subscription_id, delivery_id)
        return sorted(self._db.attempts.get(delivery_id, []), key=lambda a: a["attempt"])

    async def replay(
        self,
        subscription_id: uuid.UUID,
        since: datetime,
        until: datetime | None,
        *,
        only_undelivered: bool = False,
        audit: AuditEntry | None = None,
    ) -> int:
        selection = self._subscription(subscription_id).selection()
        statuses: dict[str, list[str]] = {}
        for d in self._db.deliveries_of(subscription_id):
            statuses.setdefault(d.event_id, []).append(d.status)
        count = 0
        for row in list(self._db.archive):
            in_range = row.archived_at >= since and (until is None or row.archived_at < until)
            if (
                in_range
                and receives(selection, event_attributes(row.event))
                and lc.needs_replay(statuses.get(row.event_id, ()), only_undelivered=only_undelivered)
            ):
                self._db.queue(subscription_id, row)
                count += 1
        self._audit.append(audit)
        return count

    async def recover(
        self, subscription_id: uuid.UUID, since: datetime, *, audit: AuditEntry | None = None
    ) -> int:
        self._subscription(subscription_id)
        count = 0
        for d in sorted(self._db.deliveries_of(subscription_id), key=lambda d: d.archive_seq):
            if d.status in lc.RECOVERABLE and d.created_at >= since:
                await self.retry(subscription_id, d.id)
                count += 1
        self._audit.append(audit)
        return count

    async def pull(self, subscription_id: uuid.UUID, *, after: int, limit: int) -> PulledPage:
        selection = self._subscription(subscription_id).selection()
        later = [row for row in self._db.archive if row.seq > after]
        found: list[dict[str, Any]] = []
        last = after
        for row in later[:PULL_SCAN_LIMIT]:
            if len(found) == limit:
                break
            if receives(selection, event_attributes(row.event)):
                found.append(row.event)
            last = row.seq
        return PulledPage(found, last, any(row.seq > last for row in later))
