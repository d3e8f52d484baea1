"""The log port: the append-only log every event travels through (Kafka in production)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from schemas import CloudEvent
from schemas.bindings import KafkaRecord


@dataclass(frozen=True)
class LoggedEvent:
    """An event as read from the log, with where it was."""

    event: CloudEvent
    partition: int
    offset: int
    #: When the log accepted it (the record's timestamp), for the end-to-end delivery time.
    accepted_at: datetime | None = None


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


@dataclass(frozen=True)
class LogRecord:
    """One record as read from the log, with its position, decoded where it could be.

    ``event`` is None when the record is not a CloudEvent; ``error`` then says why. The raw
    ``key``, ``value`` and ``headers`` stay, so the record can be dead-lettered as it was."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    event: CloudEvent | None = None
    error: Exception | None = None
    timestamp_ms: int | None = None  # the record's timestamp (CreateTime: set when published)


#: A record may be this many times ``KOPPELHUB_MAX_EVENT_BYTES`` before it is handed over unread
#: (with :class:`hub.errors.RecordTooLarge`). Publish measures an event as received; its record
#: is the data re-encoded plus headers, which can grow (``1e15`` is written
#: ``1000000000000000.0``, 4.5 times as long), so the margin is wide. Larger records did not
#: come through this hub's checks.
RECORD_BYTES_FACTOR = 8


def max_record_bytes(max_event_bytes: int) -> int:
    """The largest record a :class:`LogConsumer` decodes, for events of ``max_event_bytes``."""
    return max_event_bytes * RECORD_BYTES_FACTOR


class LogConsumer(Protocol):
    """One member of the projector's consumer group: the partitions the group gave it, read in
    log order, with positions the member commits once what it read is safely stored."""

    async def start(self) -> None:
        """Join the group (the assignment may arrive later, during :meth:`poll`)."""
        ...

    async def stop(self) -> None:
        """Leave the group; uncommitted records go to the next owner of their partition."""
        ...

    async def poll(self, *, max_records: int, timeout_s: float) -> list[LogRecord]:
        """The next records of this member's partitions, in log order per partition; empty when
        none arrived within ``timeout_s``. A member that idles (the Kafka adapter's stops
        fetching after a quiet while) waits longer: until a write to the log wakes it, its next
        look, or :meth:`stop_idling`. Raises :class:`hub.errors.RetriableError` when the log
        cannot be read."""
        ...

    def stop_idling(self) -> None:
        """End a poll that idles, at once, and never idle again (the projector stops or
        drains: it must see its signals within ``timeout_s``)."""
        ...

    async def commit(self, positions: Mapping[int, int]) -> bool:
        """Mark each partition read up to (not including) its offset. False when the group had
        moved the partitions to another member meanwhile: that member replays from the last
        commit and the projector's dedupe skips what was already applied. No position past the
        records this member was handed in its current assignment is committed (False): one read
        before a rebalance is read again anyway, and may belong to a log the broker lost (an
        in-memory broker started again holds a new log from offset 0, where such a position
        would make the group skip every record below it)."""
        ...

    def wake(self) -> None:
        """End a poll that idles, once: it returns (perhaps empty) and idling goes on after."""
        ...

    async def seek(self, positions: Mapping[int, int]) -> None:
        """Read each partition again from its offset, from the next :meth:`poll` on (the
        projector's store lost transactions it had applied). A partition the group has moved
        to another member meanwhile is left alone: its new owner reads from the last commit."""
        ...

    async def caught_up(self, since: float | None = None) -> bool:
        """True once the group assigned this member its partitions (perhaps none) and it has
        read each of them up to its end. With ``since`` (a :func:`time.time`), only as the log
        answered after then: an end the member learnt earlier may predate what was published
        meanwhile (the projector's drain; False as long as the log answers nothing)."""
        ...
