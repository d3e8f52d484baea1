"""The operator ports: what the hub's status and its dead-letter topic look like from outside.

:class:`LogInspector` reads the event log as an operator sees it (end offsets, the projector
group's commits and members, the dead-letter topic) and republishes dead-lettered records;
:class:`OperationsStore` summarises the PostgreSQL side (outbox, subscriptions, connectors,
imports). Both are read-only except :meth:`LogInspector.redrive`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class PartitionLag:
    """One partition of the events topic: its end (the next offset to be written), the
    projector group's committed position (None: never committed) and what lies between."""

    partition: int
    end_offset: int
    committed: int | None

    @property
    def lag(self) -> int:
        return max(self.end_offset - (self.committed or 0), 0)


@dataclass(frozen=True)
class GroupMember:
    """A member of the projector's consumer group and the partitions it owns. Tansu answers
    DescribeGroups without assignments (nor client id and host): there the status fills them in
    from the member's own record (``hub.ports.members``, ``hub.services.status``)."""

    member_id: str
    client_id: str
    host: str
    partitions: tuple[int, ...] = ()
    #: The member's process id where the member recorded it (the broker does not report it).
    pid: int | None = None


@dataclass(frozen=True)
class LogStatus:
    topic: str
    group: str
    group_state: str
    partitions: tuple[PartitionLag, ...]
    members: tuple[GroupMember, ...]
    dlq_topic: str
    dlq_records: int

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions)


@dataclass(frozen=True)
class DeadLetter:
    """A record in the dead-letter topic, with the reason the projector parked it."""

    partition: int
    offset: int
    timestamp: datetime | None
    key: str | None
    error: str
    error_class: str
    origin: str
    #: The CloudEvent as far as it decodes (structured mode), else None with ``decode_error``.
    event: dict[str, Any] | None
    decode_error: str | None = None
    value_dropped: bool = False


@dataclass(frozen=True)
class DeadLetterPage:
    items: list[DeadLetter]
    #: Cursor after the last item (``"partition:offset"``), None at the end of the topic.
    next: str | None


@dataclass(frozen=True)
class Position:
    partition: int
    offset: int


@dataclass(frozen=True)
class Skipped:
    partition: int
    offset: int
    reason: str


@dataclass(frozen=True)
class Redriven:
    """What a redrive did: the records republished onto the events topic, those it could not
    republish (absent, or parked without their value) with the reason."""

    redriven: list[Position] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


class LogInspector(Protocol):
    """The event log as an operator sees it."""

    async def status(self) -> LogStatus:
        """End offsets and committed positions per partition, the group's members, and the
        number of records in the dead-letter topic. End offsets are the high-water marks of a
        fetch, not ``ListOffsets`` (Tansu answers that wrongly, INFRA.md)."""
        ...

    async def dead_letters(self, *, after: Position | None, limit: int) -> DeadLetterPage:
        """Dead-lettered records in (partition, offset) order, after ``after``."""
        ...

    async def redrive(self, positions: Sequence[Position] | None) -> Redriven:
        """Republish the dead-lettered records at ``positions`` (None: all of them) onto the
        events topic, as they were before they were parked; returns after acks=all. A record
        that fails again is parked again by the projector with its new error; the projector's
        dedupe makes a record that did get applied meanwhile harmless."""
        ...


@dataclass(frozen=True)
class FailingSubscription:
    id: uuid.UUID
    sink: str
    status: str
    failing_since: datetime | None
    consecutive_failures: int
    last_error: str | None
    status_reason: str | None = None


@dataclass(frozen=True)
class FailingConnector:
    id: uuid.UUID
    kind: str
    organisatie: str
    failures: int
    last_error: str | None
    last_run_at: datetime | None


@dataclass(frozen=True)
class FailedImport:
    id: uuid.UUID
    organisatie: str
    objecttype: str
    filename: str
    error: str | None
    finished_at: datetime | None


@dataclass(frozen=True)
class StoreStatus:
    """The PostgreSQL side of the hub at one moment (each part read in one statement)."""

    outbox: dict[str, int]  # pending, failed, dead
    oldest_pending: datetime | None
    now: datetime
    subscriptions: dict[str, int]  # by status
    failing_subscriptions: list[FailingSubscription]
    connectors: dict[str, int]  # total, running, failing, queued
    failing_connectors: list[FailingConnector]
    imports: dict[str, int]  # by status
    failed_imports: list[FailedImport]
    #: The outbox keys whose count is the planner's estimate, not a count: a status with more
    #: rows than the store counts exactly (its ``exact_up_to``); the estimate is at least that.
    estimated: tuple[str, ...] = ()


@dataclass(frozen=True)
class RecentAlert:
    """One of the hub's alert events (:data:`schemas.hub_events.ALERTS`) as archived."""

    type: str
    subject: str | None
    time: datetime | None
    data: dict[str, Any]


class OperationsStore(Protocol):
    async def status(self, *, failing_limit: int = 50) -> StoreStatus:
        """Counts and the failing items (at most ``failing_limit`` of each kind, longest
        failing first)."""
        ...

    async def recent_alerts(self, *, limit: int = 10) -> list[RecentAlert]:
        """The newest alert events the hub raised (dead deliveries, disabled subscriptions),
        newest first, read from the archive where the alert was written with its cause."""
        ...


def parse_position(text: str) -> Position:
    """``"partition:offset"`` → :class:`Position`; ValueError with the expected form."""
    partition, sep, offset = text.partition(":")
    if not sep or not partition.isdigit() or not offset.isdigit():
        raise ValueError(f"{text!r} is not a position: write partition:offset, e.g. 0:42")
    return Position(int(partition), int(offset))
