"""Ports: what the services need from the log and the store, as small protocols.

Adapters implement them (``KafkaEventLog``, ``Postgres…``); services depend only on these.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from schemas import CloudEvent
from subscriptions.filters import Filter


@dataclass(frozen=True)
class LoggedEvent:
    """An event as read from the log, with where it was."""

    event: CloudEvent
    partition: int
    offset: int


@dataclass(frozen=True)
class ArchivedEvent:
    """An event the projector saw for the first time, with its archive position."""

    seq: int
    event: CloudEvent


@dataclass(frozen=True)
class SubscriptionRecord:
    """A stored subscription, as the API shows it (never with its secret)."""

    id: uuid.UUID
    sink: str
    protocol: str
    source: str | None
    types: list[str] | None
    filters: list[dict[str, Any]]
    headers: dict[str, str]
    config: dict[str, Any]
    status: str
    status_reason: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class MatchableSubscription:
    """What the projector needs to decide whether an event goes to a subscription."""

    id: uuid.UUID
    source: str | None
    types: frozenset[str] | None
    filters: Sequence[Filter] = field(default_factory=tuple)


@dataclass(frozen=True)
class NewDelivery:
    subscription_id: uuid.UUID
    archive_seq: int
    event_id: str
    ordering_key: str | None


class EventLog(Protocol):
    """The append-only log every event travels through (Kafka)."""

    async def publish(self, events: Sequence[CloudEvent]) -> None:
        """Append events; returns only when the log acknowledged all of them (acks=all)."""
        ...


class ProjectionUnitOfWork(Protocol):
    """One projector transaction: everything in it commits together or not at all."""

    async def record_new(self, batch: Sequence[LoggedEvent]) -> list[ArchivedEvent]:
        """Mark events processed and archive them; returns those not seen before, in order."""
        ...

    async def subscriptions(self) -> Sequence[MatchableSubscription]:
        """Every subscription that should receive matching events."""
        ...

    async def add_deliveries(self, deliveries: Sequence[NewDelivery]) -> None:
        """Queue outbox rows and wake the dispatchers once the transaction commits."""
        ...
