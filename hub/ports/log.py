"""The log port: the append-only log every event travels through (Kafka in production)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from schemas import CloudEvent
from schemas.bindings import KafkaRecord


@dataclass(frozen=True)
class LoggedEvent:
    """An event as read from the log, with where it was."""

    event: CloudEvent
    partition: int
    offset: int


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
