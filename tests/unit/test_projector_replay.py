"""A crash of the projector's store can take its last commits along (PostgreSQL's asynchronous
commit): the projector then reads those batches again from the log, even when the flush after
them succeeds on the restarted store. Before, it committed the log positions past them, and
acknowledged events were never projected (a CI run of the PostgreSQL-kill test missed 4 of
120 deliveries). On the twins: the in-memory store's :meth:`crash` loses what was committed
since its last ``durable``, as PostgreSQL may."""

from __future__ import annotations

import asyncio

import pytest

from hub.adapters.memory import InMemoryEventLog, InMemoryProjectionStore
from hub.errors import RetriableError
from hub.ports.metrics import NO_METRICS, Metrics, NoMetrics
from hub.services import projector_commits
from hub.services.projector import Projector
from hub.services.projector_commits import Committer
from schemas import CloudEvent

GROUP = "koppelhub-projector"


def event(event_id: str, key: str = "k") -> CloudEvent:
    return CloudEvent(
        specversion="1.0", id=event_id, source="urn:nld:test", type="nl.test.event.v1", subject=key, data={}
    )


def archived(store: InMemoryProjectionStore) -> list[str]:
    return [a.event.id for a in store.archive]


class Counted(NoMetrics):
    def __init__(self) -> None:
        self.read_again_count = 0

    def read_again(self) -> None:
        self.read_again_count += 1


def projecting(
    log: InMemoryEventLog, store: InMemoryProjectionStore, metrics: Metrics = NO_METRICS
) -> tuple[asyncio.Task[None], asyncio.Event]:
    """A projector running on the twins, and its drain (set it: the projector returns once it
    has read everything published)."""
    drained = asyncio.Event()
    projector = Projector(lambda: log.consumer(GROUP), store, log, derive=None, metrics=metrics)
    return asyncio.create_task(projector.run(asyncio.Event(), drain=drained)), drained


class GatedStore(InMemoryProjectionStore):
    """A flush after something was applied waits for :attr:`gate` (set again per flush) until
    :meth:`open`, and says when it began (:attr:`flushing`); its first ``failures`` fail as an
    unreachable database does."""

    def __init__(self, failures: int = 0) -> None:
        super().__init__()
        self.gate, self.flushing, self.failures = asyncio.Event(), asyncio.Queue[list[str]](), failures
        self.gated = True

    async def checkpoint(self) -> None:
        """What a clean shutdown does first: everything committed becomes durable."""
        await super().durable()

    def open(self) -> None:
        self.gated = False
        self.gate.set()

    async def durable(self) -> str:
        if archived(self) and self.gated:
            self.flushing.put_nowait(archived(self))
            await self.gate.wait()
            self.gate.clear()
            if self.failures:
                self.failures -= 1
                raise RetriableError("database unreachable")
        return await super().durable()


async def test_a_batch_the_crash_lost_is_read_again_though_the_flush_after_the_restart_succeeds() -> None:
    log, store, metrics = InMemoryEventLog(partitions=1), GatedStore(), Counted()
    await log.publish([event("first")])
    running, drained = projecting(log, store, metrics)
    async with asyncio.timeout(5):
        assert await store.flushing.get() == ["first"]  # applied, its commit not yet durable
        store.crash()  # PostgreSQL comes back without it
        assert archived(store) == []
        store.gate.set()  # the flush succeeds, on the new incarnation
        assert await store.flushing.get() == ["first"]  # read again and applied again
        await log.publish([event("second")])
        store.open()
        drained.set()
        await running
    assert archived(store) == ["first", "second"]
    assert log.committed(GROUP) == {0: 2}
    assert metrics.read_again_count == 1  # koppelhub_projection_read_again_total


async def test_a_batch_the_crash_lost_is_read_again_when_its_flush_failed_during_the_outage() -> None:
    log, store = InMemoryEventLog(partitions=1), GatedStore(failures=1)
    await log.publish([event("first")])
    running, drained = projecting(log, store)
    async with asyncio.timeout(5):
        assert await store.flushing.get() == ["first"]
        store.crash()
        store.gate.set()  # PostgreSQL is away: this flush fails, the positions are kept
        await log.publish([event("second")])  # applied once it is back
        assert await store.flushing.get() == ["second"]  # "first" was lost with the crash
        store.gate.set()  # this flush succeeds, on the new incarnation
        assert await store.flushing.get() == ["second", "first"]  # read again from "first"
        store.open()
        drained.set()
        await running
    assert sorted(archived(store)) == ["first", "second"]
    assert log.committed(GROUP) == {0: 2}


async def test_an_idle_member_reads_again_what_the_crash_lost_without_a_further_batch() -> None:
    # The flush during the outage fails; the round tries again until the store answers, so
    # the loss is found although nothing more is published (found in review).
    log, store = InMemoryEventLog(partitions=1), GatedStore(failures=1)
    await log.publish([event("first")])
    running, drained = projecting(log, store)
    async with asyncio.timeout(10):
        assert await store.flushing.get() == ["first"]
        store.crash()
        store.gate.set()  # this flush fails; the next, 0.5 s later, answers the new incarnation
        assert await store.flushing.get() == ["first"]  # read again and applied again
        store.open()
        drained.set()
        await running
    assert archived(store) == ["first"]
    assert log.committed(GROUP) == {0: 1}


async def test_a_drain_does_not_end_before_the_batches_the_crash_lost_are_applied_again() -> None:
    # The drain finds the member caught up while the commit round under way has yet to learn
    # that the store lost "first" (found by tests/e2e/test_projection_crash.py).
    log, store = InMemoryEventLog(partitions=1), GatedStore()
    await log.publish([event("first")])
    running, drained = projecting(log, store)
    async with asyncio.timeout(5):
        assert await store.flushing.get() == ["first"]
        store.crash()
        drained.set()
        store.open()
        await running
    assert archived(store) == ["first"]
    assert log.committed(GROUP) == {0: 1}


async def test_a_crash_that_lost_nothing_reads_again_what_was_uncommitted_and_applies_it_once() -> None:
    log, store = InMemoryEventLog(partitions=2), GatedStore()
    await log.publish([event("first", "a"), event("other", "d")])
    running, drained = projecting(log, store)
    async with asyncio.timeout(5):
        assert sorted(await store.flushing.get()) == ["first", "other"]
        await store.checkpoint()
        store.crash()  # everything was flushed: a new incarnation, nothing lost
        store.gate.set()
        assert sorted(await store.flushing.get()) == ["first", "other"]  # read again: dedupe
        store.open()
        drained.set()
        await running
    assert sorted(archived(store)) == ["first", "other"]
    assert log.committed(GROUP) == {0: 1, 1: 1}


async def test_a_batch_applied_before_the_member_rewound_is_read_again_too() -> None:
    """Between the round that finds the loss and the member's next poll, the member may finish
    one more batch, read at the old positions: it is read again as well, and not committed."""
    log, store = InMemoryEventLog(partitions=2), InMemoryProjectionStore()
    consumer = log.consumer(GROUP)
    await consumer.start()
    committer = Committer(consumer, store)
    await committer.begin()
    committer.behind({0: (0, 3)}, committer.incarnation)  # offsets 0-2 applied; the round gathers
    store.crash()
    async with asyncio.timeout(5):
        await committer.done()  # its flush answers the new incarnation
    committer.behind({0: (3, 4), 1: (7, 9)}, committer.incarnation)  # finished meanwhile
    assert committer.rewind() == {0: 0, 1: 7}
    assert committer.rewind() is None  # once
    assert log.committed(GROUP) == {}


class FirstFlushHangs(InMemoryProjectionStore):
    """Its first flush (the member's, at its start) never answers, as a hung database."""

    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    async def durable(self) -> str:
        self.flushes += 1
        if self.flushes == 1:
            await asyncio.Event().wait()
        return await super().durable()


async def test_a_member_whose_first_flush_hangs_starts_reading_after_the_flush_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(projector_commits, "FLUSH_TIMEOUT_SECONDS", 0.2)
    log, store = InMemoryEventLog(partitions=1), FirstFlushHangs()
    await log.publish([event("first")])
    running, drained = projecting(log, store)
    drained.set()
    async with asyncio.timeout(5):
        await running
    assert archived(store) == ["first"]
    assert log.committed(GROUP) == {0: 1}  # its incarnation was not known: read again, applied once
