"""The audit trail port: an append-only log of management actions and refused attempts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from hub.paging import Page


@dataclass(frozen=True)
class AuditEntry:
    """Who did what to which object, how it ended, from where; ``changes`` names the fields a
    change gave (never their values: no secret ever reaches the trail)."""

    action: str
    target: str
    outcome: str  # "ok" | "refused" (401/403) | "failed" (another 4xx/5xx)
    status: int
    actor_name: str | None = None
    actor_role: str | None = None
    actor_organisatie: str | None = None
    actor_credential: str | None = None  # token id, "admin" or "jwt:<subject>"
    request_id: str | None = None
    client: str | None = None
    changes: list[str] = field(default_factory=list)
    time: datetime | None = None  # set by the store
    id: int | None = None  # set by the store


@dataclass(frozen=True)
class AuditQuery:
    since: datetime | None = None
    until: datetime | None = None
    actor: str | None = None  # actor name or credential
    action: str | None = None
    target: str | None = None
    organisatie: str | None = None  # only entries of this actor organisation (None: all)
    filters: Mapping[str, Any] = field(default_factory=dict)


class AuditLog(Protocol):
    async def record(self, entry: AuditEntry) -> None:
        """Append one entry (the store sets ``time`` and ``id``)."""
        ...

    async def list(self, query: AuditQuery, *, limit: int, cursor: str | None) -> Page[AuditEntry]:
        """Newest first; ``next_cursor`` continues after the last entry of the page."""
        ...

    async def cleanup(self, *, older_than_days: float) -> int:
        """Retention: the only way entries ever leave the trail. Returns how many went."""
        ...
