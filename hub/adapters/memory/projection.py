"""In-memory twin of the projection store and the landscape reader, for fast tests.

They pass the same contract suite as the PostgreSQL adapters (``tests/contract/``), which is
what keeps them honest. A transaction works on copies and swaps them in on commit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from hub.adapters.memory.audit import InMemoryAuditLog
from hub.paging import Page
from hub.ports import (
    ArchivedEvent,
    LandscapeSnapshot,
    LandscapeWrite,
    Landschap,
    LoggedEvent,
    MatchableSubscription,
    NewDelivery,
    ObjectKey,
    Route,
    StoredObject,
    Watermark,
)
from hub.ports.audit import AuditEntry
from hub.ports.landscape import LIST_FILTERS, check_filters
from schemas import CloudEvent
from schemas.landscape import parse_inbound_type
from schemas.landscape.privacy import owner_of


@dataclass
class _State:
    processed: set[tuple[str, str]] = field(default_factory=set)
    archive: list[ArchivedEvent] = field(default_factory=list)
    deliveries: list[NewDelivery] = field(default_factory=list)
    objects: dict[ObjectKey, StoredObject] = field(default_factory=dict)
    watermarks: dict[tuple[ObjectKey, str], Watermark] = field(default_factory=dict)

    def copy(self) -> _State:
        lists = list(self.archive), list(self.deliveries)
        return _State(set(self.processed), *lists, dict(self.objects), dict(self.watermarks))


class InMemoryLandscapeUnitOfWork:
    def __init__(self, state: _State):
        self._state = state

    async def load(self, keys: Collection[ObjectKey], sources: Collection[str]) -> LandscapeSnapshot:
        objects = {k: self._state.objects[k] for k in keys if k in self._state.objects}
        marks = {(k, s): m for (k, s), m in self._state.watermarks.items() if k in keys and s in sources}
        return LandscapeSnapshot(objects, marks)

    async def write(self, changes: LandscapeWrite) -> None:
        for key in changes.deletes:
            self._state.objects.pop(key, None)
        self._state.objects.update(changes.upserts)
        self._state.watermarks.update(changes.watermarks)


class InMemoryProjectionUnitOfWork:
    def __init__(self, state: _State, subscriptions: Sequence[MatchableSubscription]):
        self._state = state
        self._subscriptions = subscriptions
        self.landscape = InMemoryLandscapeUnitOfWork(state)

    def _archive(self, event: CloudEvent) -> ArchivedEvent | None:
        key = (event.source, event.id)
        if key in self._state.processed:
            return None
        self._state.processed.add(key)
        archived = ArchivedEvent(len(self._state.archive) + 1, event)
        self._state.archive.append(archived)
        return archived

    async def record_new(self, batch: Sequence[LoggedEvent]) -> list[ArchivedEvent]:
        return [a for item in batch if (a := self._archive(item.event)) is not None]

    async def archive_derived(self, events: Sequence[CloudEvent]) -> list[ArchivedEvent]:
        return [a for event in events if (a := self._archive(event)) is not None]

    async def subscriptions(self) -> Sequence[MatchableSubscription]:
        return self._subscriptions

    async def add_deliveries(self, deliveries: Sequence[NewDelivery]) -> None:
        self._state.deliveries.extend(deliveries)


class InMemoryRebuild:
    def __init__(self, state: _State):
        self._state = state
        self.landscape = InMemoryLandscapeUnitOfWork(state)

    async def archive(self, chunk: int = 1000) -> AsyncIterator[list[ArchivedEvent]]:
        events = [a for a in self._state.archive if parse_inbound_type(a.event.type)]
        for start in range(0, len(events), chunk):
            yield events[start : start + chunk]


def _matches(obj: StoredObject, filters: Mapping[str, str]) -> bool:
    for name, value in filters.items():
        how, fields = LIST_FILTERS[obj.objecttype][name]
        if how == "eq" and obj.state.get(fields) != value:
            return False
        if how == "has" and value not in obj.state.get(fields, []):
            return False
        if how == "either" and value not in (obj.state.get(f) for f in fields):
            return False
    return True


class InMemoryProjectionStore:
    """Projection store and landscape reader in one object, like the database behind both."""

    def __init__(
        self,
        subscriptions: Sequence[MatchableSubscription] = (),
        *,
        audit_log: InMemoryAuditLog | None = None,
    ):
        self._state = self._durable = _State()
        self.incarnation, self._crashes = "memory", 0
        self.subscriptions = list(subscriptions)
        self._audit = audit_log or InMemoryAuditLog()  # the rebuild's entries

    @property
    def archive(self) -> list[ArchivedEvent]:
        return list(self._state.archive)

    @property
    def deliveries(self) -> list[NewDelivery]:
        return list(self._state.deliveries)

    async def durable(self) -> str:
        """Nothing to wait for; what was committed so far survives a :meth:`crash`."""
        self._durable = self._state  # a commit swaps in a new state: this one stays as it is
        return self.incarnation

    def crash(self) -> None:
        """What a crash of PostgreSQL with asynchronous commits may do (for tests): the commits
        since the last :meth:`durable` are lost, and a new incarnation answers."""
        self._state = self._durable.copy()
        self._crashes += 1
        self.incarnation = f"memory, after crash {self._crashes}"

    async def apply_at_once(self, batch: Sequence[LoggedEvent], route: Route) -> tuple[int, int] | None:
        """What the PostgreSQL store does in one statement, here in one :meth:`transaction` (so a
        test's store whose transactions fail fails this as well)."""
        async with self.transaction() as uow:
            archived = await uow.record_new(batch)
            listed = await uow.subscriptions()
            new = [
                NewDelivery(sid, a.seq, a.event.id, a.event.key())
                for a in archived
                for sid in route(listed, a.event)
            ]
            await uow.add_deliveries(new)
        return len(archived), len(new)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[InMemoryProjectionUnitOfWork]:
        work = self._state.copy()
        yield InMemoryProjectionUnitOfWork(work, self.subscriptions)
        self._state = work

    @asynccontextmanager
    async def rebuilding(self, *, audit: AuditEntry | None = None) -> AsyncIterator[InMemoryRebuild]:
        work = self._state.copy()
        work.objects, work.watermarks = {}, {}
        yield InMemoryRebuild(work)
        self._state = work
        self._audit.append(audit)

    # -- LandscapeReader ------------------------------------------------------------------

    async def get(self, objecttype: str, object_id: str) -> StoredObject | None:
        return self._state.objects.get((objecttype, object_id))

    async def owners(self, keys: Collection[ObjectKey]) -> dict[ObjectKey, str | None]:
        stored = ((k, self._state.objects.get(k)) for k in keys)
        return {k: owner_of(k[0], obj.state) for k, obj in stored if obj is not None}

    async def objects(self, keys: Collection[ObjectKey]) -> dict[ObjectKey, StoredObject]:
        return {k: obj for k in keys if (obj := self._state.objects.get(k)) is not None}

    async def list(
        self, objecttype: str, filters: Mapping[str, str], *, after: str | None, limit: int
    ) -> Page[StoredObject]:
        check_filters(objecttype, filters)
        found = sorted(
            (
                o
                for (t, i), o in self._state.objects.items()
                if t == objecttype and (after is None or i > after)
            ),
            key=lambda o: o.id,
        )
        hits = [o for o in found if _matches(o, filters)]
        items = hits[:limit]
        return Page(items, items[-1].id if len(hits) > limit else None)

    async def landschap(self, organisatie: str) -> Landschap:
        objects = self._state.objects
        uses = sorted(
            (o for (t, _), o in objects.items() if t == "gebruik" and o.state["afnemer"] == organisatie),
            key=lambda o: o.id,
        )
        links = sorted(
            (
                o
                for (t, _), o in objects.items()
                if t == "koppeling" and o.state.get("organisatie") == organisatie
            ),
            key=lambda o: o.id,
        )
        return Landschap(
            organisatie=objects.get(("organisatie", organisatie)),
            gebruik=[(u, objects.get(("applicatie", u.state["applicatie"]))) for u in uses],
            koppelingen=links,
        )
