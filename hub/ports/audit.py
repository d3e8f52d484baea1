"""The audit trail port: an append-only log of management actions and refused attempts.

A change's entry is written in the same transaction as the change: the stores that hold
management objects (tokens, subscriptions, connectors) take an ``audit=`` entry with each
write, so a change that fails leaves no entry and a change that is made always has one.
"""

from __future__ import annotations

import dataclasses
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

    def about(self, object_id: object) -> AuditEntry:
        """This entry for the object a change made: ``{id}`` in ``target`` becomes its id (a
        create's entry is drafted before the store has given the object one)."""
        return dataclasses.replace(self, target=self.target.replace("{id}", str(object_id)))


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
