"""Ports of the connector runner: what it needs from the store (PostgreSQL adapters implement them)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, NamedTuple, Protocol

from hub.paging import Page
from hub.ports.audit import AuditEntry

Key = tuple[str, str]  # (objecttype, object id)


@dataclass(frozen=True)
class SyncScope:
    """One source's view of the landscape: fingerprints are kept per scope.

    ``source`` is the CloudEvents source of its events; ``key`` goes into the event ids.
    """

    source: str
    organisatie: str
    key: str


class Fingerprint(NamedTuple):
    """What a scope published last of one object. A named tuple rather than a frozen dataclass
    (immutable alike), as :class:`Published`: one is made per row a re-import reads."""

    hash: str | None  # None: withdrawn
    generation: int
    #: The fields published last, kept for pass-through items (to name what changed).
    data: dict[str, Any] | None = None


class Published(NamedTuple):
    """One object a batch published. A named tuple rather than a frozen dataclass (immutable
    alike): an import makes one per row, and a named tuple is built in half the time (0.7
    against 1.5 µs) and, holding only strings and ints, is dropped from the garbage collector's
    scans (benchmarks/imports.py)."""

    objecttype: str
    object_id: str
    hash: str | None
    generation: int
    data: Mapping[str, Any] | None = None


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
    async def known(
        self, scope: SyncScope, keys: Sequence[Key], *, with_data: bool = False
    ) -> dict[Key, Fingerprint]:
        """The fingerprints of ``keys`` this scope has (absent: never published); ``with_data``:
        with the fields published last."""
        ...

    async def commit(self, scope: SyncScope, owner: Owner, batch: BatchCommit) -> None:
        """Record a batch whose events Kafka acknowledged, with the owner's progress; one transaction."""
        ...

    async def unseen(
        self, scope: SyncScope, run: uuid.UUID, types: Sequence[str], *, after: Key | None, limit: int
    ) -> list[tuple[Key, int]]:
        """Live objects of ``types`` not read by ``run``: ``((objecttype, id), generation)``, by key."""
        ...

    async def remember(self, scope: SyncScope, written: Sequence[Published]) -> None:
        """Record what a write-back wrote to the source as what this scope published last (no
        event, no run, no progress; ``seen`` kept), so the next read of the object as written
        is unchanged rather than an echo."""
        ...


@dataclass(frozen=True)
class ConnectorRecord:
    id: uuid.UUID
    kind: str
    organisatie: str
    config: dict[str, Any]
    schedule_seconds: int
    enabled: bool
    checkpoint: dict[str, Any] | None
    next_run_at: datetime
    failures: int
    last_run_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    last_counts: dict[str, Any] | None
    events_published: int
    created_at: datetime
    updated_at: datetime
    #: Whether the config reads a source on the schedule; False: it only writes back, and is
    #: never claimed to run.
    polls: bool = True


@dataclass(frozen=True)
class ImportRecord:
    id: uuid.UUID
    organisatie: str
    objecttype: str
    mode: str
    filename: str
    path: str
    options: dict[str, Any]
    status: str
    rows_read: int
    counts: dict[str, Any]
    report: dict[str, Any]
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class ConnectorStore(Protocol):
    """ConnectorStore"""

    async def create(
        self,
        *,
        kind: str,
        organisatie: str,
        config: dict[str, Any],
        schedule_seconds: int,
        enabled: bool,
        polls: bool = True,
        audit: AuditEntry | None = None,
    ) -> ConnectorRecord:
        """A new connector (``polls`` False: it only writes back and is never claimed); ``audit``
        (as on every write here) is written in the same transaction, its ``{id}`` the new
        connector's; a write that fails leaves none."""
        ...

    async def get(self, connector_id: uuid.UUID) -> ConnectorRecord: ...

    async def all(self, *, organisatie: str | None = None) -> list[ConnectorRecord]: ...

    async def update(
        self, connector_id: uuid.UUID, *, audit: AuditEntry | None = None, **values: Any
    ) -> ConnectorRecord:
        """Change config (with ``polls``), schedule or enabled; a changed config starts over
        (checkpoint cleared)."""
        ...

    async def delete(self, connector_id: uuid.UUID, *, audit: AuditEntry | None = None) -> None: ...

    async def request_run(self, connector_id: uuid.UUID, *, audit: AuditEntry | None = None) -> None:
        """Make the connector due now (the runner picks it up at its next poll); ``audit`` with it."""
        ...

    async def claim_due(self, limit: int) -> list[ConnectorRecord]:
        """Enabled connectors that poll, whose time has come and that no runner holds, leased to
        this one."""
        ...

    async def work_waiting(self) -> bool:
        """Whether a claim would find something now: a connector :meth:`claim_due` takes, or an
        import ``ImportStore.claim`` takes. A look without locks, so that the runner's poll
        costs one statement when there is nothing to do (and claims only when there is)."""
        ...

    async def finish(
        self,
        connector_id: uuid.UUID,
        *,
        error: str | None,
        counts: dict[str, Any] | None,
        next_in_seconds: float,
    ) -> None:
        """Record the outcome of a run and when the next one is due; the lease ends."""
        ...


@dataclass(frozen=True)
class RunRecord:
    """One run of a connector, as ``GET /api/v1/connectors/{id}/runs`` shows it."""

    id: uuid.UUID
    connector_id: uuid.UUID
    started_at: datetime
    finished_at: datetime | None
    status: str  # running, succeeded, failed, interrupted
    counts: dict[str, Any]
    errors: list[dict[str, Any]]
    checkpoint_before: dict[str, Any] | None
    checkpoint_after: dict[str, Any] | None
    diagnostics: dict[str, Any] | None


class RunStore(Protocol):
    """The history of connector runs, newest first."""

    async def start_run(self, connector_id: uuid.UUID, checkpoint: dict[str, Any] | None) -> uuid.UUID: ...

    async def finish_run(
        self,
        run_id: uuid.UUID,
        *,
        status: str,
        counts: dict[str, Any],
        errors: list[dict[str, Any]],
        diagnostics: dict[str, Any] | None,
    ) -> None:
        """Close the run; its ``checkpoint_after`` is the connector's checkpoint now."""
        ...

    async def runs(
        self, connector_id: uuid.UUID, *, limit: int, before: tuple[datetime, uuid.UUID] | None = None
    ) -> list[RunRecord]: ...


class ImportStore(Protocol):
    """ImportStore"""

    async def create(
        self,
        *,
        import_id: uuid.UUID,
        organisatie: str,
        objecttype: str,
        mode: str,
        filename: str,
        path: str,
        options: dict[str, Any],
        audit: AuditEntry | None = None,
    ) -> ImportRecord:
        """Queue an import; ``audit`` (its ``{id}`` the import's) in the same transaction."""
        ...

    async def get(self, import_id: uuid.UUID) -> ImportRecord: ...

    async def history(
        self, *, limit: int, cursor: str | None, organisatie: str | None = None
    ) -> Page[ImportRecord]:
        """Past and queued imports, newest first (``cursor``: from the previous page); only one
        organisation's when ``organisatie`` is given."""
        ...

    async def claim(self) -> ImportRecord | None:
        """The oldest queued import (or one whose worker's lease ran out), now ``running`` here.

        A re-claimed import starts over: its earlier errors are dropped, and rows it published
        before count as unchanged this time (their fingerprints are recorded).
        """
        ...

    async def start(self, import_id: uuid.UUID) -> None:
        """Mark an import running here without the queue (``koppelhub import`` runs it itself)."""
        ...

    async def requeue(self, import_id: uuid.UUID) -> None:
        """Give a running import back to the queue (this process is stopping)."""
        ...

    async def finish(
        self,
        import_id: uuid.UUID,
        *,
        error: str | None,
        counts: dict[str, Any] | None = None,
        report: dict[str, Any] | None = None,
    ) -> None: ...

    async def add_errors(self, import_id: uuid.UUID, errors: list[RowError]) -> None: ...

    async def errors(self, import_id: uuid.UUID, *, limit: int | None = None) -> list[RowError]: ...

    async def error_count(self, import_id: uuid.UUID) -> int: ...

    def stream_errors(self, import_id: uuid.UUID) -> AsyncIterator[RowError]: ...
