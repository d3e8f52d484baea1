"""A subscription's cap bounds what its sink has in flight, while the dispatcher holds up to twice
that claimed (``subscriptions.flow.claim_room``): a place freed at the sink goes to a claimed
delivery at once, not after the next claim. In-memory outbox, no broker or database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from typing import Any

import pytest

from hub.adapters.memory import InMemoryDatabase, InMemoryOutbox, InMemorySubscriptionStore
from hub.ports import ClaimedDelivery
from hub.services.delivery_policy import RetryPolicy
from hub.services.dispatcher import Dispatcher
from hub.services.send_gate import SendGate
from schemas import validate_event
from subscriptions.delivery import DeliveryTarget
from subscriptions.retry import RetrySchedule
from subscriptions.sender import DeliveryOutcome, Disposition

SID = uuid.uuid4()


async def test_the_gate_lets_the_cap_through_and_the_rest_in_the_order_they_asked() -> None:
    gate = SendGate()
    await gate.enter(SID, 2)
    await gate.enter(SID, 2)
    order: list[int] = []

    async def waits(n: int) -> None:
        await gate.enter(SID, 2)
        order.append(n)

    waiting = [asyncio.create_task(waits(n)) for n in (1, 2, 3)]
    await asyncio.sleep(0)
    assert (gate.sending(SID), gate.waiting(SID), order) == (2, 3, [])
    gate.leave(SID)
    await asyncio.sleep(0)
    assert order == [1]
    gate.leave(SID)
    gate.leave(SID)
    await asyncio.gather(*waiting)
    assert order == [1, 2, 3]
    assert (gate.sending(SID), gate.waiting(SID)) == (2, 0)


async def test_a_delivery_cancelled_while_it_waits_takes_no_place() -> None:
    gate = SendGate()
    await gate.enter(SID, 1)
    cancelled = asyncio.create_task(gate.enter(SID, 1))
    after = asyncio.create_task(gate.enter(SID, 1))
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    gate.leave(SID)
    await asyncio.wait_for(after, timeout=1)  # the place went past the cancelled one
    assert (gate.sending(SID), gate.waiting(SID)) == (1, 0)
    gate.leave(SID)
    assert gate.sending(SID) == 0


async def test_a_lowered_cap_lets_no_one_in_until_the_sending_are_below_it() -> None:
    gate = SendGate()
    for _ in range(3):
        await gate.enter(SID, 3)
    later = asyncio.create_task(gate.enter(SID, 1))  # the subscription's cap was lowered to 1
    await asyncio.sleep(0)
    gate.leave(SID)
    gate.leave(SID)
    await asyncio.sleep(0)
    assert not later.done()  # one still sending: the cap is full
    gate.leave(SID)
    await asyncio.wait_for(later, timeout=1)
    assert gate.sending(SID) == 1


class HeldSink:
    """Holds every request until :meth:`answer_one`; counts what it has in flight."""

    def __init__(self) -> None:
        self.now = self.most = 0
        self.started: list[int] = []
        self.answers: asyncio.Queue[None] = asyncio.Queue()
        self.changed = asyncio.Event()

    async def deliver(
        self, target: DeliveryTarget, event: Mapping[str, Any], msg_id: str, *, timeout_s: float | None = None
    ) -> DeliveryOutcome:
        self.now += 1
        self.most = max(self.most, self.now)
        self.started.append(event["data"]["n"])
        self.changed.set()
        try:
            await self.answers.get()
        finally:
            self.now -= 1
        return DeliveryOutcome(
            disposition=Disposition.DELIVERED, status_code=204, error=None, duration_ms=1.0
        )

    async def until(self, started: int) -> None:
        while len(self.started) < started:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), timeout=5)


class SlowClaims(InMemoryOutbox):
    """Counts claims and what they took; from the third on, a claim waits for ``claims_go``."""

    def __init__(self, db: InMemoryDatabase) -> None:
        super().__init__(db)
        self.claims = self.taken = 0
        self.claims_go = asyncio.Event()
        self.took_four = asyncio.Event()

    async def claim(
        self, limit: int, lease_seconds: float, room: Mapping[uuid.UUID, int] | None = None
    ) -> list[ClaimedDelivery]:
        self.claims += 1
        if self.claims > 2:
            await self.claims_go.wait()
        claimed = await super().claim(limit, lease_seconds, room)
        self.taken += len(claimed)
        if self.taken >= 4:
            self.took_four.set()
        return claimed


def _event(n: int) -> Any:
    return validate_event(
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "urn:nld:oin:00000001001234567000:systeem:moon",
            "type": "nl.example.verzoek.v1",
            "subject": f"melding-{n}",
            "data": {"n": n},
        }
    )


async def test_a_place_freed_at_the_sink_goes_to_a_claimed_delivery_without_waiting_for_a_claim() -> None:
    db = InMemoryDatabase()
    created = await InMemorySubscriptionStore(db).create(
        sink="https://sink.example/hook", protocol="HTTP", source=None, types=None, filters=[], headers={},
        config={}, secret="whsec_" + "A" * 32, max_concurrency=2,
    )  # fmt: skip
    outbox = SlowClaims(db)
    sink = HeldSink()
    policy = RetryPolicy(RetrySchedule.of([0.05]), slow_down_s=0)
    dispatcher = Dispatcher(outbox, sink, policy, asyncio.Event(), poll_seconds=0.02, claim_ahead=True)
    db.publish([_event(n) for n in range(6)])
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    try:
        await sink.until(started=2)
        await asyncio.wait_for(outbox.took_four.wait(), timeout=5)  # twice the cap claimed ...
        assert (sink.now, outbox.claims) == (2, 2)  # ... and the sink has its cap, no more
        sink.answers.put_nowait(None)
        await sink.until(started=3)  # the next starts while every later claim is held up
        assert sink.now == 2
        outbox.claims_go.set()
        for _ in range(4):
            sink.answers.put_nowait(None)
        await sink.until(started=6)
        for _ in range(2):
            sink.answers.put_nowait(None)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)
    assert sorted(sink.started) == list(range(6))
    assert sink.most == 2
    assert [d.status for d in db.deliveries_of(created.id)] == ["delivered"] * 6


class SlowAndFast:
    """Holds every request to ``slow`` sinks until the test ends; answers the others at once."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.fast = self.slow = 0
        self.fast_done = asyncio.Event()
        self.slow_held = asyncio.Event()  # set once both slow sinks hold their two places

    async def deliver(
        self, target: DeliveryTarget, event: Mapping[str, Any], msg_id: str, *, timeout_s: float | None = None
    ) -> DeliveryOutcome:
        if "slow" in target.sink:
            self.slow += 1
            if self.slow == 4:
                self.slow_held.set()
            await self.release.wait()
        else:
            self.fast += 1
            if self.fast == 10:
                self.fast_done.set()
        return DeliveryOutcome(
            disposition=Disposition.DELIVERED, status_code=204, error=None, duration_ms=1.0
        )


async def test_deliveries_waiting_for_a_slow_sinks_place_do_not_hold_back_another_subscription() -> None:
    db = InMemoryDatabase()
    store = InMemorySubscriptionStore(db)
    for n in range(2):  # together 4 sending and 4 claimed ahead, of a concurrency of 10
        await store.create(
            sink=f"https://slow-{n}.example/hook", protocol="HTTP", source=None, types=None, filters=[],
            headers={}, config={}, secret="whsec_" + "A" * 32, max_concurrency=2, ordering="none",
        )  # fmt: skip
    db.publish([_event(n) for n in range(10)])
    client = SlowAndFast()
    policy = RetryPolicy(RetrySchedule.of([0.05]), slow_down_s=0)
    notified = asyncio.Event()  # the projector's NOTIFY
    dispatcher = Dispatcher(
        InMemoryOutbox(db), client, policy, notified, poll_seconds=0.02, concurrency=10, claim_ahead=True
    )
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    try:
        await asyncio.wait_for(client.slow_held.wait(), timeout=5)  # more wait for their places
        await store.create(
            sink="https://fast.example/hook", protocol="HTTP", source=None, types=None, filters=[],
            headers={}, config={}, secret="whsec_" + "A" * 32,
        )  # fmt: skip
        db.publish([_event(n) for n in range(10, 20)])
        notified.set()
        await asyncio.wait_for(client.fast_done.wait(), timeout=5)
    finally:
        client.release.set()
        stop.set()
        await asyncio.wait_for(task, timeout=5)
