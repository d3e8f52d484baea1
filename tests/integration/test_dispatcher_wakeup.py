"""Which outbox NOTIFY wakes which dispatcher (hub/services/dispatcher_wakeup.py), on the real
PostgreSQL: a dispatcher beside a projector of its own does not claim for rows whose writer's
own dispatcher takes them (with two work processes the loser of that race made an empty claim
per commit, issue 17), and still delivers them on its poll when nobody else does; a dispatcher
without a projector (a dispatch child of ``run``) sleeps while the work process's own dispatcher
takes its rows and claims once that one has no room."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.adapters.postgres.engine import create_engine
from hub.adapters.postgres.outbox import OutboxListener, PostgresOutbox
from hub.adapters.postgres.projection import PostgresProjectionStore
from hub.adapters.postgres.subscriptions import PostgresSubscriptionStore
from hub.ports import ClaimedDelivery, LoggedEvent
from hub.services.delivery_policy import RetryPolicy
from hub.services.dispatcher import Dispatcher
from hub.services.dispatcher_wakeup import Beside, wakes
from hub.services.projection import apply_events
from subscriptions.delivery import DeliveryTarget
from subscriptions.retry import RetrySchedule
from subscriptions.sender import DeliveryOutcome, Disposition
from tests.contract.delivery_harness import HUB, event


class Sink:
    """Answers 204 to every delivery and remembers the events' ids."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.arrived = asyncio.Event()

    async def deliver(
        self, target: DeliveryTarget, event: Mapping[str, Any], msg_id: str, *, timeout_s: float | None = None
    ) -> DeliveryOutcome:
        self.ids.append(str(event["id"]))
        self.arrived.set()
        return DeliveryOutcome(
            disposition=Disposition.DELIVERED, status_code=204, error=None, duration_ms=1.0
        )

    async def until(self, ids: set[str]) -> None:
        async with asyncio.timeout(30):
            while not ids <= set(self.ids):
                self.arrived.clear()
                await self.arrived.wait()


class CountingOutbox(PostgresOutbox):
    """The PostgreSQL outbox, keeping the event ids of each claim."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine, source_urn=HUB)
        self.claims: list[list[str]] = []
        self.claimed = asyncio.Event()

    async def claim(
        self, limit: int, lease_seconds: float, room: Mapping[uuid.UUID, int] | None = None
    ) -> list[ClaimedDelivery]:
        got = await super().claim(limit, lease_seconds, room)
        self.claims.append([c.event_id for c in got])
        self.claimed.set()
        return got


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    made = create_engine(database_url, pool_size=3, pre_ping=False)
    await PostgresSubscriptionStore(made).create(
        sink="https://sink.example/hook", protocol="HTTP", source=None, types=None, filters=[],
        headers={}, config={}, secret="whsec_" + "A" * 32,
    )  # fmt: skip
    yield made
    await made.dispose()


@asynccontextmanager
async def _running(
    database_url: str, engine: AsyncEngine, rule: Beside | None, poll_seconds: float
) -> AsyncIterator[tuple[CountingOutbox, Sink]]:
    """A dispatcher beside a projector (``rule``; None: a dispatcher alone) on its own listener,
    started and idle after its first (empty) claim."""
    listener = OutboxListener(database_url, wakes)
    await listener.start()
    outbox, sink, stop = CountingOutbox(engine), Sink(), asyncio.Event()
    policy = RetryPolicy(RetrySchedule.of([1.0]))
    dispatcher = Dispatcher(outbox, sink, policy, listener.wakeup, poll_seconds=poll_seconds)
    if rule is not None:
        rule.beside(lambda: dispatcher.claiming, listener.wakeup.set)
    try:
        await asyncio.wait_for(listener.listening.wait(), 20)
        running = asyncio.create_task(dispatcher.run(stop))
        await asyncio.wait_for(outbox.claimed.wait(), 20)
        try:
            yield outbox, sink
        finally:
            stop.set()
            await running
    finally:
        await listener.stop()


async def _project(store: PostgresProjectionStore, *subjects: str) -> set[str]:
    events = [event(subject, n) for n, subject in enumerate(subjects)]
    await apply_events(store, [LoggedEvent(e, 0, n) for n, e in enumerate(events)], None)
    return {e.id for e in events}


async def test_a_dispatcher_beside_a_projector_skips_the_notify_of_a_sibling_whose_own_dispatcher_claims(
    database_url: str, engine: AsyncEngine
) -> None:
    a = Beside(lambda: True, writer="a")
    sibling = PostgresProjectionStore(engine, a.payload, a.committed)
    anyone = PostgresProjectionStore(engine)  # a projector without a dispatcher beside it
    async with _running(database_url, engine, Beside(writer="b"), poll_seconds=3600) as (outbox, sink):
        assert outbox.claims == [[]]
        # One batch by the transaction, one by the single statement (the subscriptions known):
        # each NOTIFYs with the sibling's name. Nothing else may wake this dispatcher: its poll
        # is an hour.
        theirs = await _project(sibling, "k1") | await _project(sibling, "k2")
        marker = await _project(anyone, "k3")  # NOTIFY for everyone, after the sibling's ones

        await sink.until(theirs | marker)

        # Woken once, by the marker: one claim took the sibling's rows with it. Without the rule
        # the sibling's NOTIFYs woke it first (a claim of their own, then an empty one).
        assert len(outbox.claims) == 2 and set(outbox.claims[1]) == theirs | marker


async def test_rows_whose_writers_dispatcher_never_claims_them_are_delivered_on_the_poll(
    database_url: str, engine: AsyncEngine
) -> None:
    a = Beside(lambda: True, writer="a")
    sibling = PostgresProjectionStore(engine, a.payload, a.committed)  # "a" is gone
    async with _running(database_url, engine, Beside(writer="b"), poll_seconds=0.2) as (outbox, sink):
        theirs = await _project(sibling, "k1")

        await sink.until(theirs)

        assert any(set(claim) == theirs for claim in outbox.claims)


async def test_a_dispatcher_is_woken_in_the_process_by_its_own_projectors_commit_not_by_its_notify(
    database_url: str, engine: AsyncEngine
) -> None:
    b = Beside(writer="b")
    own = PostgresProjectionStore(engine, b.payload, b.committed)
    async with _running(database_url, engine, b, poll_seconds=3600) as (outbox, sink):
        # Its listener skips the NOTIFY naming this process and the poll is an hour: only the
        # wake-up after the commit (Beside.committed) makes it claim. Once by the transaction,
        # once by the single statement.
        first = await _project(own, "k1")
        await sink.until(first)
        second = await _project(own, "k2")
        await sink.until(second)

        assert [set(claim) for claim in outbox.claims[1:] if claim] == [first, second]


async def test_a_spare_dispatcher_sleeps_while_the_work_processs_dispatcher_claims_and_claims_once_it_is_full(
    database_url: str, engine: AsyncEngine
) -> None:
    room = True
    work = Beside(lambda: room, writer="a")
    projector = PostgresProjectionStore(engine, work.payload, work.committed)  # "a" delivers nothing here
    async with _running(database_url, engine, None, poll_seconds=3600) as (outbox, sink):
        named = await _project(projector, "k1")  # NOTIFY naming "a": the dispatch child sleeps
        room = False  # "a"'s dispatcher is full: its projector's next NOTIFY is for everyone
        marker = await _project(projector, "k2")

        await sink.until(named | marker)

        # Woken once, by the second commit; its claim took the first one's row with it.
        assert len(outbox.claims) == 2 and set(outbox.claims[1]) == named | marker
