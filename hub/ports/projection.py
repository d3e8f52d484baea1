"""The projection port: one projector transaction (dedupe, archive, landscape, outbox)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from hub.ports.audit import AuditEntry
from hub.ports.landscape import LandscapeUnitOfWork
from hub.ports.log import LoggedEvent
from schemas import CloudEvent
from subscriptions.filters import Filter


@dataclass(frozen=True)
class ArchivedEvent:
    """An event the projector saw for the first time, with its archive position."""

    seq: int
    event: CloudEvent


@dataclass(frozen=True)
class MatchableSubscription:
    """What the projector needs to decide whether an event goes to a subscription."""

    id: uuid.UUID
    source: str | None
    types: frozenset[str] | None
    filters: Sequence[Filter] = field(default_factory=tuple)
    organisatie: str | None = None  # the owning organisation (None: hub-wide), see recipients


@dataclass(frozen=True)
class NewDelivery:
    subscription_id: uuid.UUID
    archive_seq: int
    event_id: str
    ordering_key: str | None


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


#: The subscriptions an event goes to, out of the given ones (the projector's rule,
#: :func:`subscriptions.recipients.recipients`, handed to :meth:`ProjectionStore.apply_at_once`).
Route = Callable[[Sequence[MatchableSubscription], CloudEvent], Iterable[uuid.UUID]]


class ProjectionStore(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[ProjectionUnitOfWork]: ...

    async def apply_at_once(self, batch: Sequence[LoggedEvent], route: Route) -> tuple[int, int] | None:
        """Apply a batch without landscape events as one transaction would (dedupe, archive,
        one outbox row per subscription ``route`` gives for each new event, wake the
        dispatchers), in one step: returns the new events and outbox rows. None when this store
        cannot now (it does not know the subscriptions yet, they changed, the batch is too
        large): then nothing was written and the projector takes :meth:`transaction`."""
        ...

    async def durable(self) -> str:
        """Return once every transaction committed before the call survives a crash of the
        store. A commit may return before it is on disk (PostgreSQL's asynchronous commit):
        the projector calls this before it commits log positions past those transactions.

        Returns the store's incarnation, which changes whenever a crash may have lost commits
        (PostgreSQL: a token in an unlogged table, which crash recovery empties, also when
        only one server process died and the postmaster stayed up). A transaction committed
        after a flush that answered an incarnation is durable only if this answer is still
        that incarnation; if not, the projector reads it again from the log."""
        ...


class DeadLetters(Protocol):
    async def dead_letter(
        self,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
        error: BaseException,
        origin: Any,
    ) -> None: ...


class Rebuild(Protocol):
    """An open rebuild: emptied landscape tables and the archive to replay into them."""

    @property
    def landscape(self) -> LandscapeUnitOfWork: ...

    def archive(self, chunk: int = 1000) -> AsyncIterator[list[ArchivedEvent]]:
        """Archived inbound landscape events in archive order, ``chunk`` at a time."""
        ...


class RebuildableStore(Protocol):
    def rebuilding(self, *, audit: AuditEntry | None = None) -> AbstractAsyncContextManager[Rebuild]:
        """Empty the landscape in a transaction that commits when the block ends; ``audit`` is
        written in that transaction (a rebuild that fails leaves no entry)."""
        ...
