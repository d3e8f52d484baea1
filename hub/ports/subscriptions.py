"""The subscriptions port: stored subscriptions as the API and the dispatcher see them."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from hub.paging import Page
from hub.ports.audit import AuditEntry

#: Columns a PATCH may set directly (API field names are mapped onto these by the route).
UPDATABLE = frozenset(
    {
        "sink",
        "source",
        "types",
        "filters",
        "headers",
        "config",
        "retry_schedule",
        "ordering",
        "max_concurrency",
        "max_rate",
        "content_mode",
        "auth",
        "handshake",
        "allowed_rate",
        #: The owning organisation: the API sets it once, at create; only a connector's
        #: write-back subscription follows its connector's ``writeBack.organisaties``.
        "organisatie",
    }
)


#: Columns set when a subscription is created and never changed by a store update.
CREATE_ONLY = frozenset({"id"})


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
class SubscriptionDetails(SubscriptionRecord):
    """A subscription with its delivery policy. ``auth`` holds secrets: the API redacts it."""

    retry_schedule: list[float] | None = None
    ordering: str = "key"
    max_concurrency: int | None = None
    max_rate: float | None = None
    content_mode: str = "structured"
    handshake: str | None = None
    allowed_rate: float | None = None
    previous_secret_expires_at: datetime | None = None
    auth: Mapping[str, Any] = field(default_factory=dict)
    #: Health: attempts failed in a row since the last delivered one, the newest failure's
    #: error, and since when it fails (all reset by a delivered attempt or a resume).
    consecutive_failures: int = 0
    last_error: str | None = None
    failing_since: datetime | None = None
    organisatie: str | None = None  # the owning organisation; None: hub-wide


#: The list filters the subscriptions API offers, with what each matches.
#: (The organisations issue adds ``organisatie`` here and in :class:`SubscriptionFilter`.)
SUBSCRIPTION_FILTERS: Mapping[str, str] = {
    "status": "the life-cycle status: active, paused or disabled",
    "sink": "sink URLs starting with this text",
    "organisatie": "the owning organisation (a caller bound to one organisation sees only its own)",
}


@dataclass(frozen=True)
class SubscriptionFilter:
    """What :meth:`SubscriptionStore.list` keeps: every given field must match."""

    status: str | None = None
    sink_prefix: str | None = None

    def matches(self, status: str, sink: str) -> bool:
        """The rule, for the in-memory twin (PostgreSQL runs it as SQL)."""
        return (self.status is None or status == self.status) and (
            self.sink_prefix is None or sink.startswith(self.sink_prefix)
        )


@dataclass(frozen=True)
class SigningTarget:
    """What a test delivery needs: where, how, and the secrets that sign."""

    sink: str
    secrets: list[str]
    headers: dict[str, str]
    content_mode: str
    auth: dict[str, Any]


class SubscriptionStore(Protocol):
    """Create, read, list and delete subscriptions; read their deliveries."""

    async def create(
        self,
        *,
        sink: str,
        protocol: str,
        source: str | None,
        types: list[str] | None,
        filters: list[dict[str, Any]],
        headers: dict[str, str],
        config: dict[str, Any],
        secret: str,
        audit: AuditEntry | None = None,
        **options: Any,
    ) -> SubscriptionDetails:
        """A new subscription (and ``audit``, its ``{id}`` the new one's, in the same
        transaction); ``options`` are columns of :data:`UPDATABLE`, plus ``id`` for an
        internal subscription whose id is derived from its owner (a connector's write-back);
        an ``id`` in use is a :class:`~hub.errors.PermanentError`."""
        ...

    async def get(self, subscription_id: uuid.UUID) -> SubscriptionDetails: ...

    async def list(
        self,
        *,
        limit: int,
        cursor: str | None,
        where: SubscriptionFilter | None = None,
        owned_by: str | None = None,
    ) -> Page[SubscriptionDetails]:
        """In creation order; only those ``where`` matches and, when ``owned_by`` is given, only
        that organisation's."""
        ...

    async def update(
        self,
        subscription_id: uuid.UUID,
        changes: Mapping[str, Any],
        *,
        enabled: bool | None = None,
        audit: AuditEntry | None = None,
    ) -> SubscriptionDetails:
        """Apply ``changes`` (columns in :data:`UPDATABLE`) and the life-cycle switch.

        Every write here takes an optional ``audit`` entry, written in the write's own
        transaction: a write that fails (NotFound included) leaves none.

        ``enabled=False`` pauses: deliveries stay queued. ``enabled=True`` makes a paused or
        disabled subscription active again and every open delivery due now, in order (the one
        a 410 left behind included); the failure clock starts afresh.
        """
        ...

    async def rotate_secret(
        self,
        subscription_id: uuid.UUID,
        new_secret: str,
        grace_seconds: float,
        *,
        audit: AuditEntry | None = None,
    ) -> datetime:
        """Make ``new_secret`` current; the old one also signs for ``grace_seconds``. Returns when
        the old one stops.
        """
        ...

    async def signing_target(self, subscription_id: uuid.UUID) -> SigningTarget:
        """Sink, headers, auth and current secrets, for a test delivery."""
        ...

    async def delete(self, subscription_id: uuid.UUID, *, audit: AuditEntry | None = None) -> None: ...

    async def deliveries(
        self, subscription_id: uuid.UUID, *, status: str | None, limit: int, cursor: str | None
    ) -> Page[dict[str, Any]]:
        """The delivery log, oldest event first."""
        ...
