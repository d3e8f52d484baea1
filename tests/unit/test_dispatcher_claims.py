"""How the dispatcher's claims follow each other under load (issue 17: fan-out): a claim never
takes the whole concurrency, so the next one runs while the last one's deliveries are sent."""

from __future__ import annotations

import asyncio
from typing import Any

from hub.adapters.memory import InMemoryDatabase, InMemorySubscriptionStore
from hub.services.delivery_policy import RetryPolicy
from hub.services.dispatcher import Dispatcher
from subscriptions.retry import RetrySchedule
from subscriptions.sender import DeliveryOutcome
from tests.unit.test_dispatcher import FakeClient, Journal, event, numbers


class HeldClient(FakeClient):
    """Sinks that answer only once :attr:`gate` opens; :meth:`reached` is set once that many
    deliveries are at the sinks (the markers the test waits for)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self._marks: dict[int, asyncio.Event] = {}

    def reached(self, n: int) -> asyncio.Event:
        return self._marks.setdefault(n, asyncio.Event())

    async def deliver(self, *args: Any, **kwargs: Any) -> DeliveryOutcome:
        outcome = await super().deliver(*args, **kwargs)
        self.reached(len(self.sent)).set()
        await self.gate.wait()
        return outcome


async def test_the_next_claim_runs_while_the_last_claims_deliveries_are_in_flight() -> None:
    # Eight due deliveries, room for four in flight (the subscription's own cap is 16). One
    # claim of four was sent, answered and ended together, and only then came the next claim:
    # its round trip left every sink idle (benchmarks.fanout: each claim took all 160 slots
    # once an idle subscription got its whole cap, and fan-out fell 10-15 %). Two claims of
    # two are both made before any attempt ends.
    db, client = InMemoryDatabase(), HeldClient()
    outbox = Journal(db)
    policy = RetryPolicy(RetrySchedule.of([60.0]), slow_down_s=0)
    dispatcher = Dispatcher(outbox, client, policy, asyncio.Event(), concurrency=4, poll_seconds=60)
    await InMemorySubscriptionStore(db).create(
        sink="https://a.example/hook", protocol="HTTP", source=None, types=None, filters=[],
        headers={}, config={}, secret="whsec_" + "A" * 32,
    )  # fmt: skip
    db.publish([event(f"k{n}", n) for n in range(1, 9)])
    stop = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stop))
    async with asyncio.timeout(5):
        await client.reached(4).wait()
    assert outbox.steps == ["claim 2", "claim 2"]

    client.gate.set()
    async with asyncio.timeout(5):
        await client.reached(8).wait()
    stop.set()  # the dispatcher ends what is in flight and records it
    await running
    assert sorted(numbers(client.sent)) == list(range(1, 9))
    assert dispatcher.stats.delivered == 8
