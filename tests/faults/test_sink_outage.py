"""A sink down for 24 hours, in simulated time: the dispatcher and the in-memory outbox (held to
the PostgreSQL adapter by the contract suite) share a clock the test moves from one due retry
to the next, so a day of retries takes well under a second.

With the default schedule (5 s … 1 day, 46.7 h in all) every retry happens at its scheduled
moment, nothing goes dead, and once the sink is back everything arrives, in order per key.
With a schedule shorter than the outage each delivery goes dead at its last scheduled attempt,
no sooner and no later, and a recover re-sends all of it under the same webhook-id."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Any

from hub.adapters.memory import InMemoryDatabase, InMemoryOutbox, InMemorySubscriptionStore
from hub.adapters.memory.outbox import InMemoryDeliveryStore
from hub.ports import AttemptResult, ClaimedDelivery
from hub.services.delivery_policy import RetryPolicy
from hub.services.dispatcher import Dispatcher
from schemas import CloudEvent, validate_event
from subscriptions.delivery import DeliveryTarget
from subscriptions.lifecycle import message_id
from subscriptions.retry import DEFAULT_RETRY_SCHEDULE, RetrySchedule
from subscriptions.sender import DeliveryOutcome, Disposition

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
OUTAGE = timedelta(hours=24)
SINK = "https://down-for-a-day.example/hook"


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class DaySink:
    """Answers 503 until ``back_at`` on the shared clock, then 204; keeps what arrived."""

    clock: Clock
    back_at: datetime
    arrived: list[tuple[datetime, str, Mapping[str, Any]]] = field(default_factory=list)

    async def deliver(
        self, target: DeliveryTarget, event: Mapping[str, Any], msg_id: str, *, timeout_s: float | None = None
    ) -> DeliveryOutcome:
        if self.clock() < self.back_at:
            return DeliveryOutcome(
                disposition=Disposition.RETRY, status_code=503, error="http_503", duration_ms=1.0
            )
        self.arrived.append((self.clock(), msg_id, event))
        return DeliveryOutcome(
            disposition=Disposition.DELIVERED, status_code=204, error=None, duration_ms=1.0
        )


class CountingOutbox(InMemoryOutbox):
    """Knows how many claimed deliveries are not yet recorded: the clock moves only when none are."""

    def __init__(self, db: InMemoryDatabase, **options: Any):
        super().__init__(db, **options)
        self.open = 0
        self.changed = asyncio.Event()

    async def claim(
        self, limit: int, lease_seconds: float, room: Mapping[uuid.UUID, int] | None = None
    ) -> list[ClaimedDelivery]:
        claimed = await super().claim(limit, lease_seconds, room)
        self.open += len(claimed)
        return claimed

    async def record(self, results: Sequence[AttemptResult]) -> bool:
        waiting = await super().record(results)
        self.open -= len(results)
        self.changed.set()
        return waiting


@dataclass
class Day:
    clock: Clock
    db: InMemoryDatabase
    outbox: CountingOutbox
    sink: DaySink
    wakeup: asyncio.Event
    dispatcher: Dispatcher

    async def until(self, end: datetime) -> None:
        """Let the dispatcher work, moving the clock to each next due retry, up to ``end``."""
        stop = asyncio.Event()
        task = asyncio.create_task(self.dispatcher.run(stop))
        try:
            async with asyncio.timeout(30):
                while True:
                    await asyncio.sleep(0.01)  # a claim round; poll_seconds is 0.01
                    if self.outbox.open:
                        self.outbox.changed.clear()
                        await self.outbox.changed.wait()
                        continue
                    due = await self.outbox.next_due()
                    if due is not None and due <= self.clock():
                        continue  # due now: the next claim round takes it
                    if due is None or due > end:
                        break
                    self.clock.now = due
                    self.wakeup.set()
        finally:
            stop.set()
            await task
        self.clock.now = max(self.clock.now, end)

    def attempts(self) -> dict[uuid.UUID, list[dict[str, Any]]]:
        return {d.id: self.db.attempts.get(d.id, []) for d in self.db.deliveries.values()}


def day(delays: Sequence[float]) -> Day:
    clock = Clock()
    db = InMemoryDatabase(clock=clock)
    outbox = CountingOutbox(db, disable_after_seconds=5 * 86_400.0)
    sink = DaySink(clock, T0 + OUTAGE)
    wakeup = asyncio.Event()
    policy = RetryPolicy(RetrySchedule.of(delays), slow_down_s=0)  # no jitter: exact moments
    dispatcher = Dispatcher(outbox, sink, policy, wakeup, poll_seconds=0.01, lease_seconds=60, clock=clock)
    return Day(clock, db, outbox, sink, wakeup, dispatcher)


async def subscribe(db: InMemoryDatabase) -> uuid.UUID:
    created = await InMemorySubscriptionStore(db).create(
        sink=SINK,
        protocol="HTTP",
        source=None,
        types=None,
        filters=[],
        headers={},
        config={},
        secret="whsec_" + "A" * 32,
    )
    return created.id


def event(key: str, n: int) -> CloudEvent:
    return validate_event(
        {
            "specversion": "1.0",
            "id": f"{key}-{n}",
            "source": "urn:nld:oin:00000001001234567000:systeem:zaaksysteem",
            "type": "nl.example.thing.changed.v1",
            "subject": key,
            "data": {"n": n},
        }
    )


async def test_a_day_long_outage_keeps_the_schedule_loses_nothing_and_delivers_in_order_after() -> None:
    schedule = DEFAULT_RETRY_SCHEDULE.delays
    assert sum(schedule) > OUTAGE.total_seconds()  # the default schedule outlasts a day
    d = day(schedule)
    sid = await subscribe(d.db)
    events = [event(key, n) for n in range(3) for key in ("zaak-1", "zaak-2")]
    d.db.publish(events)

    await d.until(T0 + timedelta(seconds=sum(schedule) + 60))

    expected = [T0 + timedelta(seconds=s) for s in accumulate(schedule, initial=0.0)]
    heads = [
        a for a in d.attempts().values() if a and a[0]["status_code"] == 503
    ]  # each key's first event held the key through the outage
    assert len(heads) == 2
    for attempts in heads:
        assert [a["started_at"] for a in attempts] == expected  # every retry at its moment
        assert [a["status_code"] for a in attempts] == [503] * len(schedule) + [204]
    assert sorted(r.status for r in d.db.deliveries_of(sid)) == ["delivered"] * 6  # none dead
    assert d.db.subscriptions[sid].status == "active"
    arrived = [(e["subject"], e["data"]["n"]) for _, _, e in d.sink.arrived]
    assert sorted(arrived) == sorted((e.subject, e.data["n"]) for e in events)  # nothing lost
    for key in ("zaak-1", "zaak-2"):
        assert [n for k, n in arrived if k == key] == [0, 1, 2]  # in order per key
    assert min(t for t, _, _ in d.sink.arrived) == expected[-1]  # the first attempt after it was back


async def test_a_schedule_shorter_than_the_outage_goes_dead_on_time_and_recover_resends_it() -> None:
    schedule = [3600.0] * 12  # 12 hourly retries: dead at T0 + 12 h
    d = day(schedule)
    sid = await subscribe(d.db)
    events = [event(f"zaak-{k}", 0) for k in range(3)]
    d.db.publish(events)

    await d.until(T0 + OUTAGE)

    for attempts in d.attempts().values():
        assert [a["started_at"] for a in attempts][-1] == T0 + timedelta(hours=12)  # the last, on time
        assert len(attempts) == 13
    assert [r.status for r in d.db.deliveries_of(sid)] == ["dead"] * 3
    assert d.sink.arrived == []

    assert await InMemoryDeliveryStore(d.db).recover(sid, T0) == 3  # the sink is back (T0 + 24 h)
    await d.until(T0 + OUTAGE + timedelta(minutes=1))

    assert [r.status for r in d.db.deliveries_of(sid)] == ["delivered"] * 3
    assert sorted(msg for _, msg, _ in d.sink.arrived) == sorted(message_id(sid, e.id) for e in events)
    assert all(t == T0 + OUTAGE for t, _, _ in d.sink.arrived)
