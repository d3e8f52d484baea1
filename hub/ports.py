"""Ports: what the services need from the log and the store, as small protocols.

Adapters implement them (``KafkaEventLog``, ``Postgres…``); services depend only on these.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from hub.paging import Page
from schemas import CloudEvent
from schemas.bindings import KafkaRecord
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


ObjectKey = tuple[str, str]
"""A landscape object's identity: ``(objecttype, id)``."""


@dataclass(frozen=True)
class Provenance:
    """Which event put an object in its current state."""

    source: str
    event_id: str
    time: datetime | None
    sequence: str | None
    archive_seq: int


@dataclass(frozen=True)
class StoredObject:
    """A landscape object as stored: its canonical state (``model_dump(mode="json")``)."""

    objecttype: str
    id: str
    state: dict[str, Any]
    provenance: Provenance

    @property
    def key(self) -> ObjectKey:
        return (self.objecttype, self.id)


@dataclass(frozen=True)
class Watermark:
    """How far one source got with one object: its latest applied ``sequence`` and ``time``.
    Kept after a delete, so an old assertion arriving late stays stale."""

    sequence: str | None
    time: datetime | None


@dataclass
class LandscapeSnapshot:
    """The stored objects and watermarks of the keys a batch touches."""

    objects: dict[ObjectKey, StoredObject] = field(default_factory=dict)
    watermarks: dict[tuple[ObjectKey, str], Watermark] = field(default_factory=dict)


@dataclass
class LandscapeWrite:
    """What one batch changes: objects to upsert and delete, and the new watermarks."""

    upserts: dict[ObjectKey, StoredObject] = field(default_factory=dict)
    deletes: set[ObjectKey] = field(default_factory=set)
    watermarks: dict[tuple[ObjectKey, str], Watermark] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.upserts or self.deletes or self.watermarks)


@dataclass(frozen=True)
class Landschap:
    """One organisation's landscape: its gebruik, each with its applicatie (None while that
    reference dangles), and the koppelingen it runs."""

    organisatie: StoredObject | None
    gebruik: list[tuple[StoredObject, StoredObject | None]]
    koppelingen: list[StoredObject]


class LandscapeUnitOfWork(Protocol):
    """The landscape tables inside one projector transaction."""

    async def load(self, keys: Collection[ObjectKey], sources: Collection[str]) -> LandscapeSnapshot:
        """The stored objects among ``keys`` and their watermarks for ``sources``."""
        ...

    async def write(self, changes: LandscapeWrite) -> None:
        """Apply upserts, deletes and watermarks."""
        ...


class LandscapeReader(Protocol):
    """What the read API asks of the landscape (see :data:`hub.services.landscape.LIST_FILTERS`)."""

    async def get(self, objecttype: str, object_id: str) -> StoredObject | None: ...

    async def list(
        self, objecttype: str, filters: Mapping[str, str], *, after: str | None, limit: int
    ) -> Page[StoredObject]:
        """Objects ordered by id, after the id ``after``; ``next_cursor`` is the last id when
        more follow."""
        ...

    async def landschap(self, organisatie: str) -> Landschap: ...


class EventLog(Protocol):
    """The append-only log every event travels through (Kafka)."""

    async def publish(self, events: Sequence[CloudEvent]) -> None:
        """Append events; returns only when the log acknowledged all of them (acks=all)."""
        ...


@runtime_checkable
class RecordLog(EventLog, Protocol):
    """An event log that also takes events already written in the Kafka binding (binary content
    mode, :func:`schemas.bindings.to_kafka_record`): a large import serialises its events in a
    worker process and hands over the bytes."""

    async def publish_records(self, records: Sequence[KafkaRecord]) -> None:
        """Append the records in order per key; returns only when the log acknowledged all of
        them (acks=all)."""
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

    @property
    def landscape(self) -> LandscapeUnitOfWork:
        """The landscape tables, in this same transaction."""
        ...

    async def archive_derived(self, events: Sequence[CloudEvent]) -> list[ArchivedEvent]:
        """Archive events the hub itself emitted (no log position), after everything archived
        so far in this transaction; returns them with their archive positions."""
        ...
