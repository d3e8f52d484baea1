"""Ports of the connector runner: what it needs from the store (PostgreSQL adapters implement them)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Key = tuple[str, str]  # (objecttype, object id)


@dataclass(frozen=True)
class SyncScope:
    """One source's view of the landscape: fingerprints are kept per scope.

    ``source`` is the CloudEvents source of its events; ``key`` goes into the event ids.
    """

    source: str
    organisatie: str
    key: str


@dataclass(frozen=True)
class Fingerprint:
    hash: str | None  # None: withdrawn
    generation: int


@dataclass(frozen=True)
class Published:
    objecttype: str
    object_id: str
    hash: str | None
    generation: int


@dataclass(frozen=True)
class RowError:
    row: int | None
    column: str
    message: str


@dataclass(frozen=True)
class Owner:
    """Whose progress a commit carries: a connector (checkpoint) or an import (counts, errors)."""

    kind: Literal["connector", "import"]
    id: uuid.UUID


@dataclass
class BatchCommit:
    """Everything one acknowledged batch changes, written in one transaction."""

    published: Sequence[Published] = ()
    seen: Sequence[Key] = ()
    run: uuid.UUID | None = None
    checkpoint: dict[str, Any] | None = None
    events: int = 0
    rows_read: int = 0
    counts: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    errors: Sequence[RowError] = ()


class FingerprintStore(Protocol):
    async def known(self, scope: SyncScope, keys: Sequence[Key]) -> dict[Key, Fingerprint]:
        """The fingerprints of ``keys`` this scope has (absent: never published)."""
        ...

    async def commit(self, scope: SyncScope, owner: Owner, batch: BatchCommit) -> None:
        """Record a batch whose events Kafka acknowledged, with the owner's progress; one transaction."""
        ...

    async def unseen(
        self, scope: SyncScope, run: uuid.UUID, types: Sequence[str], *, after: Key | None, limit: int
    ) -> list[tuple[Key, int]]:
        """Live objects of ``types`` not read by ``run``: ``((objecttype, id), generation)``, by key."""
        ...
