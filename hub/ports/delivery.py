"""The delivery ports: the outbox the dispatcher claims from, and one subscription's deliveries."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from hub.ports.audit import AuditEntry


@dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery this dispatcher holds until its lease runs out, with its subscription's policy."""

    id: uuid.UUID
    subscription_id: uuid.UUID
    attempts: int
    event_id: str
    archive_seq: int
    event: dict[str, Any]
    sink: str
    secret: str
    headers: dict[str, str]
    retry_base: int = 0
    ordering_key: str | None = None
    previous_secret: str | None = None
    retry_schedule: list[float] | None = None
    ordering: str = "key"
    max_concurrency: int | None = None
    max_rate: float | None = None  # events/s: the lower of the subscription's and the sink's
    content_mode: str = "structured"
    auth: Mapping[str, Any] = field(default_factory=dict)
    organisatie: str | None = None  # the subscription's owner (None: hub-wide), for private fields
    accepted_at: datetime | None = None  # when the log accepted the event (end-to-end time)

    @property
    def secrets(self) -> list[str]:
        """Signing secrets, newest first; two during a rotation's grace period."""
        return [self.secret] if self.previous_secret is None else [self.secret, self.previous_secret]


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt came to, and what the delivery becomes."""

    delivery_id: uuid.UUID
    subscription_id: uuid.UUID
    attempt: int
    started_at: datetime
    duration_ms: float
    status_code: int | None
    error: str | None
    response_excerpt: str
    new_status: str  # delivered | failed | dead
    next_attempt_at: datetime | None
    disable_reason: str | None = None  # set when the sink said it is gone (410)
    event_id: str = ""
    event_type: str = ""
    sink: str = ""
    archive_seq: int = 0
    ordering_key: str | None = None  # set when the subscription orders by key
    #: Delivered: seconds from the log accepting the event to this attempt's end (end to end);
    #: None otherwise or when the acceptance time is unknown. For the metrics only.
    delivered_after_s: float | None = None


@dataclass(frozen=True)
class PulledPage:
    events: list[dict[str, Any]]
    last_seq: int  # the archive position to continue after
    more: bool  # whether archive rows after last_seq existed when this page was read


class Outbox(Protocol):
    async def claim(
        self, limit: int, lease_seconds: float, room: Mapping[Any, int] | None = None
    ) -> list[ClaimedDelivery]: ...
    async def record(self, results: list[AttemptResult]) -> bool:
        """Record attempts' outcomes; True when a recorded delivery's ordering key has an open
        delivery after it (which the outcome may have made due: worth a claim), False when none
        has (a claim now would find nothing the recording freed)."""
        ...

    async def next_due(self) -> datetime | None: ...


@dataclass(frozen=True)
class Removed:
    attempts: int = 0
    deliveries: int = 0
    events: int = 0


class DeliveryStore(Protocol):
    """Operations on one subscription's deliveries and on the archive it matches."""

    async def retry(
        self, subscription_id: uuid.UUID, delivery_id: uuid.UUID, *, audit: AuditEntry | None = None
    ) -> str:
        """Make one delivery due now with a fresh retry schedule; returns its new status.

        ``retry``, ``replay`` and ``recover`` write an ``audit`` entry in their own transaction
        (none when they fail)."""
        ...

    async def attempts(self, subscription_id: uuid.UUID, delivery_id: uuid.UUID) -> list[dict[str, Any]]:
        """The attempt log of one delivery, oldest first."""
        ...

    async def replay(
        self,
        subscription_id: uuid.UUID,
        since: datetime,
        until: datetime | None,
        *,
        only_undelivered: bool = False,
        audit: AuditEntry | None = None,
    ) -> int:
        """Queue a new delivery for every archived event (archived in [since, until)) that matches
        (``only_undelivered``: unless one of it was delivered or is still open)."""
        ...

    async def recover(
        self, subscription_id: uuid.UUID, since: datetime, *, audit: AuditEntry | None = None
    ) -> int:
        """Make every failed and dead delivery created since ``since`` due now, each with a fresh
        retry schedule (a manual retry of each); returns how many."""
        ...

    async def pull(self, subscription_id: uuid.UUID, *, after: int, limit: int) -> PulledPage:
        """Matching archived events after position ``after``, in archive order."""
        ...


class Retention(Protocol):
    """Removes old attempts, delivered deliveries and archive rows (never what a rebuild replays)."""

    async def cleanup(self, *, attempt_seconds: float, archive_seconds: float) -> Removed: ...
