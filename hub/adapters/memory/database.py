"""The in-memory "database" the subscription, outbox and delivery twins share.

Rows are plain mutable records; what changes them follows :mod:`subscriptions.lifecycle`
and :mod:`subscriptions.recipients` exactly as the PostgreSQL adapter does, and the contract
suites in ``tests/contract/`` hold the two to the same behaviour. Time comes from ``clock``
(the PostgreSQL adapter uses the database's ``now()``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hub.ports import MatchableSubscription
from schemas import CloudEvent
from subscriptions.filters import parse_filters
from subscriptions.lifecycle import ACTIVE, PENDING
from subscriptions.recipients import recipients


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class SubscriptionRow:
    id: uuid.UUID
    sink: str
    protocol: str
    source: str | None
    types: list[str] | None
    filters: list[dict[str, Any]]
    headers: dict[str, str]
    config: dict[str, Any]
    secret: str
    created_at: datetime
    updated_at: datetime
    status: str = ACTIVE
    status_reason: str | None = None
    retry_schedule: list[float] | None = None
    ordering: str = "key"
    max_concurrency: int | None = None
    max_rate: float | None = None
    content_mode: str = "structured"
    handshake: str | None = None
    allowed_rate: float | None = None
    previous_secret: str | None = None
    previous_secret_expires_at: datetime | None = None
    failing_since: datetime | None = None
    auth: Mapping[str, Any] = field(default_factory=dict)
    organisatie: str | None = None
    consecutive_failures: int = 0
    last_error: str | None = None

    def mark_healthy(self) -> None:
        self.failing_since, self.consecutive_failures, self.last_error = None, 0, None

    def mark_failing(self, now: datetime, failures: int, error: str | None) -> None:
        self.failing_since = self.failing_since or now
        self.consecutive_failures += failures
        self.last_error = error

    def selection(self) -> MatchableSubscription:
        types = frozenset(self.types) if self.types else None
        filters = tuple(parse_filters(self.filters))
        return MatchableSubscription(self.id, self.source, types, filters, self.organisatie)

    def previous_secret_now(self, now: datetime) -> str | None:
        expires = self.previous_secret_expires_at
        return self.previous_secret if expires is not None and expires > now else None


@dataclass
class DeliveryRow:
    id: uuid.UUID
    subscription_id: uuid.UUID
    archive_seq: int
    event_id: str
    ordering_key: str | None
    created_at: datetime
    updated_at: datetime
    next_attempt_at: datetime
    status: str = PENDING
    attempts: int = 0
    retry_base: int = 0
    last_status_code: int | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None

    def public(self) -> dict[str, Any]:
        """The delivery log's columns, as the PostgreSQL adapter returns them."""
        names = ("id", "event_id", "archive_seq", "status", "attempts", "next_attempt_at")
        more = ("last_status_code", "last_error", "created_at", "delivered_at")
        return {name: getattr(self, name) for name in names + more}


@dataclass(frozen=True)
class ArchiveRow:
    seq: int
    event: dict[str, Any]  # structured mode, as archived
    event_id: str
    ordering_key: str | None
    archived_at: datetime


@dataclass
class InMemoryDatabase:
    """Subscriptions, deliveries, their attempts and the event archive."""

    clock: Callable[[], datetime] = _utcnow
    subscriptions: dict[uuid.UUID, SubscriptionRow] = field(default_factory=dict)
    deliveries: dict[uuid.UUID, DeliveryRow] = field(default_factory=dict)
    attempts: dict[uuid.UUID, list[dict[str, Any]]] = field(default_factory=dict)
    archive: list[ArchiveRow] = field(default_factory=list)

    def queue(self, subscription_id: uuid.UUID, row: ArchiveRow) -> DeliveryRow:
        now = self.clock()
        delivery = DeliveryRow(
            uuid.uuid4(), subscription_id, row.seq, row.event_id, row.ordering_key, now, now, now
        )
        self.deliveries[delivery.id] = delivery
        return delivery

    def publish(self, events: Sequence[CloudEvent]) -> list[ArchiveRow]:
        """Archive events and queue one delivery per recipient: what the projector does (for
        the flow) and what alerts do (for the hub's own events)."""
        out = []
        for event in events:
            seq = len(self.archive) + 1
            row = ArchiveRow(seq, event.to_structured(), event.id, event.key(), self.clock())
            self.archive.append(row)
            for s in recipients([s.selection() for s in self.subscriptions.values()], event.attributes()):
                self.queue(s.id, row)
            out.append(row)
        return out

    def event(self, seq: int) -> ArchiveRow:
        return self.archive[seq - 1]

    def deliveries_of(self, subscription_id: uuid.UUID) -> list[DeliveryRow]:
        return [d for d in self.deliveries.values() if d.subscription_id == subscription_id]
