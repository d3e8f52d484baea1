"""The status summary (:class:`hub.ports.operators.OperationsStore`): in memory and PostgreSQL
count the same outbox, subscriptions, connectors and imports, and name the same failing ones."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from hub.adapters.memory import (
    InMemoryConnectorStore,
    InMemoryConnectorTables,
    InMemoryDatabase,
    InMemoryImportStore,
    InMemoryOutbox,
    InMemorySubscriptionStore,
)
from hub.adapters.memory.operations import InMemoryOperationsStore
from hub.adapters.postgres.connectors import PostgresConnectorStore
from hub.adapters.postgres.engine import create_engine
from hub.adapters.postgres.imports import PostgresImportStore
from hub.adapters.postgres.operations import PostgresOperationsStore
from hub.adapters.postgres.outbox import PostgresOutbox
from hub.adapters.postgres.projection import PostgresProjectionStore
from hub.adapters.postgres.subscriptions import PostgresSubscriptionStore
from hub.ports import ConnectorStore, ImportStore, LoggedEvent, Outbox, SubscriptionStore
from hub.ports.operators import OperationsStore
from hub.services.projection import apply_events
from schemas import CloudEvent
from schemas.hub_events import DELIVERY_DEAD
from tests.contract.delivery_harness import HUB, event, outcome


@dataclass
class Ops:
    status: OperationsStore
    subscriptions: SubscriptionStore
    outbox: Outbox
    connectors: ConnectorStore
    imports: ImportStore
    publish: object  # async (events) -> None
    capped: OperationsStore  # the same summary, counting at most 2 deliveries of a status exactly

    async def subscribe(self, sink: str) -> uuid.UUID:
        created = await self.subscriptions.create(
            sink=sink,
            protocol="HTTP",
            source=None,
            types=None,
            filters=[],
            headers={},
            config={},
            secret="whsec_" + "A" * 32,
        )
        return created.id


@pytest.fixture(params=["memory", "postgres"])
async def ops(request: pytest.FixtureRequest) -> AsyncIterator[Ops]:
    if request.param == "memory":
        db, tables = InMemoryDatabase(), InMemoryConnectorTables()

        async def memory_publish(events: list[CloudEvent]) -> None:
            db.publish(events)

        yield Ops(
            InMemoryOperationsStore(db, tables),
            InMemorySubscriptionStore(db),
            InMemoryOutbox(db, source_urn=HUB, disable_after_seconds=3600),
            InMemoryConnectorStore(tables),
            InMemoryImportStore(tables),
            memory_publish,
            InMemoryOperationsStore(db, tables, exact_up_to=2),
        )
        return
    engine = create_engine(request.getfixturevalue("database_url"), pool_size=2)
    projection = PostgresProjectionStore(engine)

    async def pg_publish(events: list[CloudEvent]) -> None:
        await apply_events(projection, [LoggedEvent(e, 0, n) for n, e in enumerate(events)], None)

    try:
        yield Ops(
            PostgresOperationsStore(engine),
            PostgresSubscriptionStore(engine),
            PostgresOutbox(engine, source_urn=HUB, disable_after_seconds=3600),
            PostgresConnectorStore(engine),
            PostgresImportStore(engine),
            pg_publish,
            PostgresOperationsStore(engine, exact_up_to=2),
        )
    finally:
        await engine.dispose()


async def test_an_empty_hub_has_nothing_open_and_nothing_failing(ops: Ops) -> None:
    s = await ops.status.status()
    assert s.outbox == {"pending": 0, "failed": 0, "dead": 0} and s.oldest_pending is None
    assert s.subscriptions == {} and s.failing_subscriptions == []
    assert s.connectors == {"total": 0, "running": 0, "failing": 0, "queued": 0}
    assert s.imports == {} and s.failed_imports == []


async def test_open_and_dead_deliveries_are_counted_and_the_failing_subscription_named(ops: Ops) -> None:
    failing = await ops.subscribe("https://down.example/hook")
    up = await ops.subscribe("https://up.example/hook")
    await ops.publish([event("a"), event("b"), event("c")])  # type: ignore[operator]

    s = await ops.status.status()
    assert s.outbox == {"pending": 6, "failed": 0, "dead": 0} and s.oldest_pending is not None
    assert s.oldest_pending <= s.now and s.estimated == ()
    assert s.subscriptions == {"active": 2} and s.failing_subscriptions == []

    # One delivery per subscription and claim: the failing sink fails once, then for good.
    for status in ("failed", "dead"):
        claimed = await ops.outbox.claim(10, 60, {failing: 1, up: 1})
        await ops.outbox.record(
            [
                outcome(c, status, code=503)
                if c.subscription_id == failing
                else outcome(c, "delivered", code=200)
                for c in claimed
            ]
        )

    s = await ops.status.status()
    assert s.outbox == {"pending": 2, "failed": 1, "dead": 1}
    [f] = s.failing_subscriptions
    assert (f.id, f.sink, f.status, f.consecutive_failures) == (
        failing,
        "https://down.example/hook",
        "active",
        2,
    )
    assert f.failing_since is not None and f.last_error == "http_503"


async def test_a_backlog_above_the_exact_limit_is_an_estimate_of_at_least_that_limit(ops: Ops) -> None:
    await ops.subscribe("https://one.example/hook")
    await ops.subscribe("https://two.example/hook")
    await ops.publish([event("a"), event("b"), event("c")])  # type: ignore[operator]

    s = await ops.capped.status()
    assert s.estimated == ("pending",)
    assert s.outbox["pending"] >= 3 and (s.outbox["failed"], s.outbox["dead"]) == (0, 0)
    assert s.oldest_pending == (await ops.status.status()).oldest_pending


async def test_running_failing_and_queued_connectors_and_failed_imports_are_counted(ops: Ops) -> None:
    make = ops.connectors.create
    broken = (await make(kind="csv", organisatie="o", config={}, schedule_seconds=60, enabled=True)).id
    await make(kind="csv", organisatie="o", config={}, schedule_seconds=60, enabled=False)
    [claimed] = await ops.connectors.claim_due(10)
    assert (await ops.status.status()).connectors == {"total": 2, "running": 1, "failing": 0, "queued": 0}

    await ops.connectors.finish(claimed.id, error="source down", counts=None, next_in_seconds=3600)
    s = await ops.status.status()
    assert s.connectors == {"total": 2, "running": 0, "failing": 1, "queued": 0}
    [c] = s.failing_connectors
    assert (c.id, c.failures, c.last_error) == (broken, 1, "source down")
    await ops.connectors.request_run(broken)
    assert (await ops.status.status()).connectors["queued"] == 1

    for name in ("a.csv", "b.csv"):
        await ops.imports.create(
            import_id=uuid.uuid4(),
            organisatie="o",
            objecttype="gebruik",
            mode="incremental",
            filename=name,
            path=f"/tmp/{name}",
            options={},
        )
    first = await ops.imports.claim()
    assert first is not None
    await ops.imports.finish(first.id, error="bad header")
    s = await ops.status.status()
    assert s.imports == {"failed": 1, "queued": 1}
    [failed] = s.failed_imports
    assert (failed.id, failed.error) == (first.id, "bad header")


async def test_the_newest_alerts_come_first_with_what_they_are_about(ops: Ops) -> None:
    assert await ops.status.recent_alerts() == []
    down = await ops.subscribe("https://down.example/hook")
    first, second = event("a"), event("b")
    await ops.publish([first, second])  # type: ignore[operator]
    for _ in range(2):  # each delivery goes dead: one alert each, in the order they died
        [claimed, *_] = await ops.outbox.claim(1, 60)
        await ops.outbox.record([outcome(claimed, "dead", code=503)])

    alerts = await ops.status.recent_alerts(limit=5)

    assert [a.type for a in alerts] == [DELIVERY_DEAD, DELIVERY_DEAD]
    assert {a.subject for a in alerts} == {str(down)}
    assert [a.data["eventId"] for a in alerts] == [second.id, first.id]  # newest first
    assert len(await ops.status.recent_alerts(limit=1)) == 1
