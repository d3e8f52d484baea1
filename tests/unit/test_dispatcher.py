"""The dispatcher against the in-memory outbox with a fake sink client: claims, outcomes,
retries, hold-back of a failed key and alerts, without broker or database.

The twins pass the same contract suite as the PostgreSQL adapters (``tests/contract/``), so
what holds here holds over PostgreSQL; the e2e tests keep what needs the real parts (SKIP
LOCKED between dispatchers, LISTEN/NOTIFY, real HTTP)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hub.adapters.memory import InMemoryDatabase, InMemoryOutbox, InMemorySubscriptionStore
from hub.ports import AttemptResult
from hub.services.delivery_policy import RetryPolicy
from hub.services.dispatcher import Dispatcher
from schemas import CloudEvent, validate_event
from schemas.hub_events import DELIVERY_DEAD, SUBSCRIPTION_DISABLED
from subscriptions.delivery import DeliveryTarget
from subscriptions.lifecycle import message_id
from subscriptions.retry import RetrySchedule
from subscriptions.sender import DeliveryOutcome, Disposition

FLOW = "nl.example.thing.changed.v1"


@dataclass
class Sent:
    sink: str
    event: Mapping[str, Any]
    msg_id: str
    target: DeliveryTarget


@dataclass
class FakeClient:
    """A sink per URL: each answers from its script (last answer repeats), default 204."""

    scripts: dict[str, list[int]] = field(default_factory=dict)
    sent: list[Sent] = field(default_factory=list)

    async def deliver(
        self, target: DeliveryTarget, event: Mapping[str, Any], msg_id: str, *, timeout_s: float | None = None
    ) -> DeliveryOutcome:
        self.sent.append(Sent(target.sink, event, msg_id, target))
        script = self.scripts.get(target.sink, [204])
        status = script.pop(0) if len(script) > 1 else script[0]
        if status == 410:
            disposition = Disposition.GONE
        elif 200 <= status < 300:
            disposition = Disposition.DELIVERED
        else:
            disposition = Disposition.RETRY
        error = None if disposition is Disposition.DELIVERED else f"http_{status}"
        return DeliveryOutcome(disposition=disposition, status_code=status, error=error, duration_ms=1.0)

    def to(self, sink: str) -> list[Sent]:
        return [s for s in self.sent if s.sink == sink]


class SignallingOutbox(InMemoryOutbox):
    """The in-memory outbox, announcing each recorded batch (what the tests wait for)."""

    def __init__(self, db: InMemoryDatabase, **options: Any):
        super().__init__(db, **options)
        self.recorded = asyncio.Event()

    async def record(self, results: Sequence[AttemptResult]) -> bool:
        waiting = await super().record(results)
        self.recorded.set()
        return waiting


@dataclass
class Hub:
    db: InMemoryDatabase
    subscriptions: InMemorySubscriptionStore
    client: FakeClient
    outbox: SignallingOutbox
    dispatcher: Dispatcher

    async def subscribe(self, sink: str, **options: Any) -> uuid.UUID:
        created = await self.subscriptions.create(
            sink=sink,
            protocol="HTTP",
            source=None,
            types=options.pop("types", None),
            filters=[],
            headers={},
            config={},
            secret="whsec_" + "A" * 32,
            **options,
        )
        return created.id

    def publish(self, *events: CloudEvent) -> None:
        self.db.publish(events)

    async def run_until(self, done: Callable[[], bool], timeout: float = 5.0) -> None:
        """Run the dispatcher until ``done()`` holds after a recorded batch, then stop it (it
        finishes what is in flight)."""
        stop = asyncio.Event()
        task = asyncio.create_task(self.dispatcher.run(stop))
        try:
            async with asyncio.timeout(timeout):
                while not done():
                    self.outbox.recorded.clear()
                    await self.outbox.recorded.wait()
        finally:
            stop.set()
            await task

    def status(self, subscription_id: uuid.UUID) -> list[str]:
        rows = sorted(self.db.deliveries_of(subscription_id), key=lambda d: d.archive_seq)
        return [d.status for d in rows]


def hub(schedule: list[float] | None = None, **outbox: Any) -> Hub:
    db = InMemoryDatabase()
    client = FakeClient()
    policy = RetryPolicy(RetrySchedule.of(schedule or [0.05, 0.05, 0.05]), slow_down_s=0)
    signalling = SignallingOutbox(db, **outbox)
    dispatcher = Dispatcher(signalling, client, policy, asyncio.Event(), poll_seconds=0.02, lease_seconds=30)
    return Hub(db, InMemorySubscriptionStore(db), client, signalling, dispatcher)


def event(subject: str, n: int) -> CloudEvent:
    return validate_event(
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "urn:nld:oin:00000001001234567000:systeem:zaaksysteem",
            "type": FLOW,
            "subject": subject,
            "data": {"n": n},
        }
    )


def numbers(sent: list[Sent]) -> list[int]:
    return [s.event["data"]["n"] for s in sent]


async def test_due_deliveries_are_sent_signed_and_recorded_as_delivered() -> None:
    h = hub()
    sid = await h.subscribe("https://a.example/hook")
    h.publish(event("k1", 1), event("k2", 2), event("k1", 3))

    await h.run_until(lambda: h.status(sid) == ["delivered"] * 3)

    assert sorted(numbers(h.client.sent)) == [1, 2, 3]
    ids = {message_id(sid, d.event_id) for d in h.db.deliveries.values()}
    assert {s.msg_id for s in h.client.sent} == ids  # one webhook-id per event and subscription
    assert h.client.sent[0].target.secrets == ["whsec_" + "A" * 32]
    assert (h.dispatcher.stats.delivered, h.dispatcher.stats.failed) == (3, 0)


async def test_a_failing_attempt_is_retried_on_the_schedule_until_delivered() -> None:
    h = hub()
    sid = await h.subscribe("https://a.example/hook")
    h.client.scripts["https://a.example/hook"] = [500, 503, 200]
    h.publish(event("k", 1))

    await h.run_until(lambda: h.status(sid) == ["delivered"])

    [delivery] = h.db.deliveries.values()
    assert [a["status_code"] for a in h.db.attempts[delivery.id]] == [500, 503, 200]
    assert (delivery.attempts, h.dispatcher.stats.failed, h.dispatcher.stats.delivered) == (3, 2, 1)


async def test_a_used_up_schedule_makes_the_delivery_dead_and_alerts_those_who_asked() -> None:
    h = hub(schedule=[0.02])
    broken = await h.subscribe("https://broken.example/hook", types=[FLOW])
    watcher = await h.subscribe("https://ops.example/alerts", types=[DELIVERY_DEAD])
    everything = await h.subscribe("https://all.example/hook")
    h.client.scripts["https://broken.example/hook"] = [500]
    h.publish(event("k", 1))

    await h.run_until(lambda: h.status(watcher) == ["delivered"])

    assert h.status(broken) == ["dead"] and len(h.client.to("https://broken.example/hook")) == 2
    [alert] = h.client.to("https://ops.example/alerts")
    assert alert.event["type"] == DELIVERY_DEAD and alert.event["data"]["subscriptionId"] == str(broken)
    assert h.status(everything) == ["delivered"]  # the flow event, never the alert
    assert h.dispatcher.stats.dead == 1


async def test_a_failed_key_holds_back_its_later_events_but_not_other_keys() -> None:
    h = hub(schedule=[0.1])
    sid = await h.subscribe("https://a.example/hook")
    h.client.scripts["https://a.example/hook"] = [500, 200]
    h.publish(event("k", 1), event("k", 2), event("other", 3))

    await h.run_until(lambda: h.status(sid) == ["delivered"] * 3)

    sent = numbers(h.client.sent)
    assert [n for n in sent if n != 3] == [1, 1, 2]  # 2 waited for 1's retry
    assert sent.index(3) < 2  # the other key went while 1 waited


async def test_a_410_disables_the_subscription_alerts_and_leaves_its_delivery_waiting() -> None:
    h = hub()
    gone = await h.subscribe("https://gone.example/hook", types=[FLOW])
    watcher = await h.subscribe("https://ops.example/alerts", types=[SUBSCRIPTION_DISABLED])
    marker = await h.subscribe("https://marker.example/hook", types=["nl.example.marker.v1"])
    h.client.scripts["https://gone.example/hook"] = [410]
    h.publish(event("k", 1), event("k", 2))

    await h.run_until(lambda: h.status(watcher) == ["delivered"])
    h.publish(validate_event({**event("m", 0).to_structured(), "type": "nl.example.marker.v1"}))
    await h.run_until(lambda: h.status(marker) == ["delivered"])

    assert len(h.client.to("https://gone.example/hook")) == 1  # nothing more after the 410
    assert h.status(gone) == ["failed", "pending"]
    subscription = await h.subscriptions.get(gone)
    assert (subscription.status, subscription.status_reason) == ("disabled", "the sink answered 410 Gone")
    [alert] = h.client.to("https://ops.example/alerts")
    assert alert.event["data"]["reason"] == "the sink answered 410 Gone"


async def test_failing_too_long_disables_the_subscription() -> None:
    h = hub(schedule=[0.02, 0.02, 0.02], disable_after_seconds=0)
    sid = await h.subscribe("https://a.example/hook")
    h.client.scripts["https://a.example/hook"] = [500]
    h.publish(event("k", 1))

    await h.run_until(lambda: h.db.subscriptions[sid].status == "disabled")

    assert h.db.subscriptions[sid].status_reason == "nothing but failed attempts for 0 s"
    assert h.status(sid) == ["failed"]


async def test_resuming_a_disabled_subscription_delivers_what_waited_in_order() -> None:
    h = hub()
    sid = await h.subscribe("https://a.example/hook")
    h.client.scripts["https://a.example/hook"] = [410, 204]
    h.publish(event("k", 1), event("k", 2))
    await h.run_until(lambda: h.db.subscriptions[sid].status == "disabled")

    await h.subscriptions.update(sid, {}, enabled=True)
    await h.run_until(lambda: h.status(sid) == ["delivered", "delivered"])

    assert numbers(h.client.sent) == [1, 1, 2]


async def test_a_stop_that_arrives_as_the_last_outcome_is_recorded_ends_the_run_cleanly() -> None:
    # The stop is set the moment the recording finishes, with nothing in flight: run used to
    # reach asyncio.wait with nothing to wait for and raise ValueError.
    h = hub()
    sid = await h.subscribe("https://a.example/hook")
    h.publish(event("k", 1))

    await h.run_until(lambda: h.status(sid) == ["delivered"])

    assert not h.dispatcher.running


async def test_a_delivery_leaves_without_the_private_note_of_an_inbound_landscape_event() -> None:
    h = hub()
    sid = await h.subscribe("https://a.example/hook")
    data = {"id": "g1", "afnemer": "gem-a", "applicatie": "app", "status": "In productie",
            "interneAantekening": "contract loopt af"}  # fmt: skip
    h.publish(validate_event({"specversion": "1.0", "id": str(uuid.uuid4()), "source": "urn:x:import",
                              "type": "nl.softwarecatalogus.gebruik.vastgelegd.v1", "subject": "g1",
                              "data": data}))  # fmt: skip

    await h.run_until(lambda: h.status(sid) == ["delivered"])

    [sent] = h.client.sent
    assert sent.event["data"]["afnemer"] == "gem-a" and "interneAantekening" not in sent.event["data"]


async def test_an_event_sent_again_by_retry_replay_and_recover_keeps_its_webhook_id() -> None:
    from datetime import UTC, datetime, timedelta

    from hub.adapters.memory import InMemoryDeliveryStore

    h = hub(schedule=[0.01])
    sid = await h.subscribe("https://a.example/hook")
    other = await h.subscribe("https://b.example/hook")
    h.client.scripts["https://a.example/hook"] = [500] * 6 + [204]
    h.publish(event("k1", 1))
    await h.run_until(lambda: h.status(sid) == ["dead"] and h.status(other) == ["delivered"])
    store, since = InMemoryDeliveryStore(h.db), datetime.now(UTC) - timedelta(hours=1)
    [dead] = h.db.deliveries_of(sid)
    await store.retry(sid, dead.id)
    await h.run_until(lambda: h.status(sid) == ["dead"])
    assert await store.recover(sid, since) == 1
    await h.run_until(lambda: h.status(sid) == ["dead"])
    assert await store.replay(sid, since, None) == 1
    await h.run_until(lambda: h.status(sid) == ["delivered", "delivered"])  # the dead one made good

    mine = {s.msg_id for s in h.client.to("https://a.example/hook")}
    assert len(h.client.to("https://a.example/hook")) == 7
    assert mine == {message_id(sid, dead.event_id)}
    assert {s.msg_id for s in h.client.to("https://b.example/hook")} != mine  # per subscription


async def test_the_sink_gets_the_events_trace_as_its_traceparent_header() -> None:
    # With no SDK (the hub without OTEL_* variables) the attempt makes no span and passes the
    # event's own context on; with one, its span continues the same trace.
    h = hub()
    await h.subscribe("https://a.example/hook")
    own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    traced = {**event("k1", 1).model_dump(mode="json", exclude_none=True), "traceparent": own}
    h.publish(validate_event(traced))

    await h.run_until(lambda: len(h.client.sent) == 1)

    [sent] = h.client.sent
    assert sent.target.headers["traceparent"].split("-")[1] == own.split("-")[1]


async def test_a_delivered_attempt_logs_at_debug_and_a_failed_one_at_info() -> None:
    # One line per delivered attempt at the default level would cost more CPU than signing it;
    # the delivery log has every attempt anyway.
    import structlog

    h = hub(schedule=[0.01])
    ok = await h.subscribe("https://a.example/hook")
    bad = await h.subscribe("https://b.example/hook")
    h.client.scripts["https://b.example/hook"] = [500, 204]
    h.publish(event("k1", 1))
    with structlog.testing.capture_logs() as logs:
        await h.run_until(lambda: h.status(ok) == ["delivered"] and h.status(bad) == ["delivered"])

    levels = sorted((e["event"], e["log_level"]) for e in logs if e["event"].startswith("delivery_"))
    assert levels == [
        ("delivery_attempted", "debug"),
        ("delivery_attempted", "debug"),
        ("delivery_failed", "info"),
    ]


class NotifiedDuringClaims(SignallingOutbox):
    """The in-memory outbox whose first ``notices`` claims each end with a NOTIFY (the
    wake-up set while the claim runs), counting the claims and the look-ups of the next due time
    made before the last such claim."""

    def __init__(self, db: InMemoryDatabase, wakeup: asyncio.Event, notices: int):
        super().__init__(db)
        self.wakeup, self.notices, self.claims, self.due_lookups = wakeup, notices, 0, 0
        self.all_noticed = asyncio.Event()

    async def claim(self, limit: int, lease_seconds: float, room: Any = None) -> Any:
        self.claims += 1
        claimed = await super().claim(limit, lease_seconds, room)
        if self.claims <= self.notices:
            self.wakeup.set()
        elif not self.all_noticed.is_set():
            self.all_noticed.set()
        return claimed

    async def next_due(self) -> Any:
        if not self.all_noticed.is_set():
            self.due_lookups += 1
        return await super().next_due()


async def test_a_notify_that_arrives_during_a_claim_is_claimed_at_once_without_a_due_time_lookup() -> None:
    db, wakeup = InMemoryDatabase(), asyncio.Event()
    outbox = NotifiedDuringClaims(db, wakeup, notices=3)
    policy = RetryPolicy(RetrySchedule.of([60.0]), slow_down_s=0)
    dispatcher = Dispatcher(outbox, FakeClient(), policy, wakeup, poll_seconds=60, lease_seconds=30)
    stop = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stop))
    async with asyncio.timeout(5):  # the poll (60 s) would time out: each NOTIFY woke it
        await outbox.all_noticed.wait()
    stop.set()
    await running
    assert outbox.claims == 4 and outbox.due_lookups == 0


async def test_an_unsampled_trace_gets_no_attempt_span_when_the_sampler_follows_its_parent() -> None:
    # Under a parentbased_* sampler (what OTEL_TRACES_SAMPLER configures) an attempt whose
    # publish was not sampled would be a non-recording span: the dispatcher makes none and
    # passes the event's context on as it came; a sampled publish still gets its span.
    from hub.tracing import follow_unsampled_parents
    from tests.support.tracing import by_name, recording

    sampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
    spans = recording()
    exporter = next(spans)  # the test SDK samples every span now, even of unsampled parents
    follow_unsampled_parents()
    try:
        h = hub()
        await h.subscribe("https://a.example/hook")
        for n, traceparent in enumerate((sampled, unsampled), 1):
            body = {
                **event(f"k{n}", n).model_dump(mode="json", exclude_none=True),
                "traceparent": traceparent,
            }
            h.publish(validate_event(body))
        await h.run_until(lambda: len(h.client.sent) == 2)

        headers = {
            s.target.headers["traceparent"].split("-")[1]: s.target.headers["traceparent"]
            for s in h.client.sent
        }
        assert headers[unsampled.split("-")[1]] == unsampled  # passed on as it came: no span of ours
        [attempt] = by_name(exporter)["deliver attempt"]
        assert attempt.parent is not None and f"{attempt.parent.span_id:016x}" == sampled.split("-")[2]
        assert headers[sampled.split("-")[1]].split("-")[2] == f"{attempt.context.span_id:016x}"
    finally:
        follow_unsampled_parents(False)
        spans.close()


class Journal(SignallingOutbox):
    """The in-memory outbox writing down each claim (with how many it took), each recording
    and each look-up of the next due time, in order; a recording waits for :attr:`gate`."""

    def __init__(self, db: InMemoryDatabase):
        super().__init__(db)
        self.steps: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.looked_up = asyncio.Event()

    async def claim(self, limit: int, lease_seconds: float, room: Any = None) -> Any:
        claimed = await super().claim(limit, lease_seconds, room)
        self.steps.append(f"claim {len(claimed)}")
        return claimed

    async def record(self, results: Sequence[AttemptResult]) -> bool:
        await self.gate.wait()
        self.steps.append("record")
        return await super().record(results)

    async def next_due(self) -> Any:
        self.steps.append("next due")
        self.looked_up.set()
        return await super().next_due()


def journalled() -> tuple[Journal, Dispatcher, FakeClient]:
    db, client = InMemoryDatabase(), FakeClient()
    outbox = Journal(db)
    policy = RetryPolicy(RetrySchedule.of([60.0]), slow_down_s=0)
    dispatcher = Dispatcher(outbox, client, policy, asyncio.Event(), poll_seconds=60, lease_seconds=30)
    return outbox, dispatcher, client


async def test_a_lone_event_costs_no_claim_that_can_only_find_nothing() -> None:
    # The latency phase's case (issue 17): one event at a time. A claim while the recording
    # runs, once more after an empty one, after a claim that got less than the idle
    # subscription's room (it was 1: such a claim seemed full), or after a recording that left
    # no later delivery of its key waiting, could find nothing: each was two statements in
    # PostgreSQL.
    outbox, dispatcher, client = journalled()
    await InMemorySubscriptionStore(outbox._db).create(
        sink="https://a.example/hook", protocol="HTTP", source=None, types=None, filters=[],
        headers={}, config={}, secret="whsec_" + "A" * 32,
    )  # fmt: skip
    outbox._db.publish([event("k1", 1)])
    stop = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stop))
    async with asyncio.timeout(5):  # the idle wait's look-up: the marker that the round ended
        await outbox.looked_up.wait()
    stop.set()
    await running
    assert numbers(client.sent) == [1]
    assert outbox.steps == ["claim 1", "record", "next due"]


async def test_a_keys_next_event_waiting_behind_a_recorded_one_is_claimed_after_that_recording() -> None:
    # No poll (60 s) and no NOTIFY: only the recording's answer leads to the claim of event 2.
    outbox, dispatcher, client = journalled()
    await InMemorySubscriptionStore(outbox._db).create(
        sink="https://a.example/hook", protocol="HTTP", source=None, types=None, filters=[],
        headers={}, config={}, secret="whsec_" + "A" * 32,
    )  # fmt: skip
    outbox._db.publish([event("k1", 1), event("k1", 2)])
    stop = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stop))
    async with asyncio.timeout(5):
        while outbox.steps.count("record") < 2 or outbox.steps[-1] != "next due":
            outbox.looked_up.clear()
            await outbox.looked_up.wait()
    stop.set()
    await running
    assert numbers(client.sent) == [1, 2]
    assert outbox.steps[outbox.steps.index("record") + 1] == "claim 1"


async def test_a_slot_freed_by_an_ended_attempt_is_used_before_that_attempt_is_recorded() -> None:
    # A subscription with one slot and two events on different keys: the second may go as
    # soon as the first attempt ends, while the first outcome's recording still waits.
    outbox, dispatcher, client = journalled()
    await InMemorySubscriptionStore(outbox._db).create(
        sink="https://a.example/hook", protocol="HTTP", source=None, types=None, filters=[],
        headers={}, config={}, secret="whsec_" + "A" * 32, max_concurrency=1,
    )  # fmt: skip
    outbox._db.publish([event("k1", 1), event("k2", 2)])
    outbox.gate.clear()  # no recording ends until both were sent
    second_sent = asyncio.Event()
    deliver = client.deliver

    async def counting(*args: Any, **kwargs: Any) -> DeliveryOutcome:
        outcome = await deliver(*args, **kwargs)
        if len(client.sent) == 2:
            second_sent.set()
        return outcome

    client.deliver = counting  # type: ignore[method-assign]
    stop = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stop))
    async with asyncio.timeout(5):
        await second_sent.wait()
    outbox.gate.set()
    stop.set()
    await running
    assert numbers(client.sent) == [1, 2]
    assert "record" not in outbox.steps[: outbox.steps.index("claim 1", 1)]
