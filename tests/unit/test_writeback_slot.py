"""A write-back's concurrency slot is freed once the target answered (``free_slot``), while
its attempt still makes the outcome durable; the delivery is recorded only when the attempt
ends. In-memory outbox, no broker or database (the dispatcher's own tests use the same parts)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from typing import Any

from hub.adapters.memory import InMemoryDatabase, InMemoryOutbox, InMemorySubscriptionStore
from hub.services.delivery_policy import RetryPolicy
from hub.services.dispatcher import Dispatcher, free_slot
from schemas import validate_event
from subscriptions.delivery import DeliveryTarget
from subscriptions.retry import RetrySchedule
from subscriptions.sender import DeliveryOutcome, Disposition


class TargetThenOwnWork:
    """A sink that is done with its target at once (frees the slot), then holds the attempt
    until ``let_go`` (the hub's own work: an outcome being made durable)."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.second_started = asyncio.Event()
        self.let_go = asyncio.Event()

    async def deliver(
        self, target: DeliveryTarget, event: Mapping[str, Any], msg_id: str, *, timeout_s: float | None = None
    ) -> DeliveryOutcome:
        self.started.append(event["data"]["n"])
        if len(self.started) == 2:
            self.second_started.set()
        free_slot.get()()
        await self.let_go.wait()
        return DeliveryOutcome(
            disposition=Disposition.DELIVERED, status_code=None, error=None, duration_ms=1.0
        )


def _event(subject: str, n: int) -> Any:
    return validate_event(
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "urn:nld:oin:00000001001234567000:systeem:moon",
            "type": "nl.example.verzoek.v1",
            "subject": subject,
            "data": {"n": n},
        }
    )


async def test_a_freed_slot_starts_the_next_delivery_while_the_first_is_not_yet_recorded() -> None:
    db = InMemoryDatabase()
    created = await InMemorySubscriptionStore(db).create(
        sink="connector:x", protocol="HTTP", source=None, types=None, filters=[], headers={}, config={},
        secret="whsec_" + "A" * 32, max_concurrency=1,
    )  # fmt: skip
    client = TargetThenOwnWork()
    policy = RetryPolicy(RetrySchedule.of([0.05]), slow_down_s=0)
    dispatcher = Dispatcher(InMemoryOutbox(db), client, policy, asyncio.Event(), poll_seconds=0.02)
    db.publish([_event("melding-1", 1), _event("melding-2", 2)])
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    try:
        # A cap of 1: the second starts only because the first freed its slot.
        await asyncio.wait_for(client.second_started.wait(), timeout=5)
        statuses = {d.status for d in db.deliveries_of(created.id)}
        assert "delivered" not in statuses  # neither is recorded while its attempt still runs
        client.let_go.set()
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)
    assert sorted(client.started) == [1, 2]
    assert [d.status for d in db.deliveries_of(created.id)] == ["delivered", "delivered"]
