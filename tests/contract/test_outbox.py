"""The outbox's contract (claims with leases, per-key order, recorded outcomes, alerts), run
against the in-memory twin and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schemas import CloudEvent, validate_event
from schemas.hub_events import DELIVERY_DEAD, SUBSCRIPTION_DISABLED
from subscriptions.delivery import encode
from tests.contract.delivery_harness import LEASE, DeliveryHarness, event, outcome
from tests.support.hub_api import eventually


async def test_a_claim_carries_the_event_and_the_subscriptions_policy(stores: DeliveryHarness) -> None:
    sid = await stores.subscribe(retry_schedule=[1.0, 2.0], content_mode="binary")
    published = event("k", n=7)
    await stores.publish(published)

    [c] = await stores.outbox.claim(10, LEASE)

    assert (c.subscription_id, c.event_id, c.attempts, c.event["data"]) == (sid, published.id, 0, {"n": 7})
    assert (c.retry_schedule, c.content_mode, c.ordering_key, c.ordering) == (
        [1.0, 2.0],
        "binary",
        "k",
        "key",
    )


async def test_a_claimed_delivery_is_leased_and_not_claimed_again(stores: DeliveryHarness) -> None:
    await stores.subscribe()
    await stores.publish(event())
    assert len(await stores.outbox.claim(10, LEASE)) == 1

    assert await stores.outbox.claim(10, LEASE) == []
    due = await stores.outbox.next_due()
    assert due is not None and due > datetime.now(UTC) + timedelta(seconds=LEASE - 10)


async def test_a_key_goes_in_order_unless_the_subscription_orders_none(stores: DeliveryHarness) -> None:
    keyed = await stores.subscribe()
    unordered = await stores.subscribe(ordering="none")
    await stores.publish(event("k", 1), event("k", 2), event("other", 3))
    room = {keyed: 10, unordered: 10}

    claimed = await stores.outbox.claim(10, LEASE, room)

    by_sub = {sid: [c.event["data"]["n"] for c in claimed if c.subscription_id == sid] for sid in room}
    assert by_sub == {keyed: [1, 3], unordered: [1, 2, 3]}


def unkeyed(n: int) -> CloudEvent:
    """An event without subject or partitionkey: no ordering key, never held back."""
    published = event(n=n).model_dump(mode="json", exclude_none=True)
    published.pop("subject")
    return validate_event(published)


async def test_with_every_key_head_in_flight_a_claim_still_offers_new_keys_and_unkeyed_rows(
    stores: DeliveryHarness,
) -> None:
    sid = await stores.subscribe()
    await stores.publish(event("a", 1), event("a", 2), event("b", 3), event("b", 4))
    heads = await stores.outbox.claim(10, LEASE, {sid: 10})
    await stores.publish(event("a", 5), unkeyed(6), event("c", 7), event("c", 8), unkeyed(9))

    claimed = await stores.outbox.claim(10, LEASE, {sid: 10})

    assert [c.event["data"]["n"] for c in heads] == [1, 3]
    assert [c.event["data"]["n"] for c in claimed] == [6, 7, 9]
    assert [c.event["data"]["n"] for c in await stores.outbox.claim(10, LEASE, {sid: 1})] == []


async def test_room_caps_keyed_and_unkeyed_rows_together_oldest_first(stores: DeliveryHarness) -> None:
    sid = await stores.subscribe()
    await stores.publish(event("a", 1), unkeyed(2), event("b", 3), unkeyed(4))

    claimed = await stores.outbox.claim(10, LEASE, {sid: 3})

    assert [c.event["data"]["n"] for c in claimed] == [1, 2, 3]


async def test_room_caps_what_one_subscription_gets(stores: DeliveryHarness) -> None:
    sid = await stores.subscribe(ordering="none")
    await stores.publish(*(event(f"k{n}") for n in range(5)))

    assert len(await stores.outbox.claim(10, LEASE, {sid: 2})) == 2
    assert await stores.outbox.claim(10, LEASE, {sid: 0}) == []


async def test_a_delivered_attempt_is_recorded_and_frees_the_next_of_its_key(stores: DeliveryHarness) -> None:
    sid = await stores.subscribe()
    await stores.publish(event("k", 1), event("k", 2))
    [first] = await stores.outbox.claim(10, LEASE, {sid: 10})

    await stores.outbox.record([outcome(first, "delivered", code=204)])

    row = await stores.row(first.id)
    assert (row["status"], row["attempts"], row["last_status_code"]) == ("delivered", 1, 204)
    assert row["delivered_at"] is not None
    [second] = await stores.outbox.claim(10, LEASE, {sid: 10})
    assert second.event["data"]["n"] == 2
    attempts = await stores.deliveries.attempts(sid, first.id)
    assert [(a["attempt"], a["status_code"]) for a in attempts] == [(1, 204)]


async def test_an_idle_subscription_gets_its_cap_or_its_rates_burst(stores: DeliveryHarness) -> None:
    # Idle: the dispatcher's room lists it not. Without a rate it got room 1 (GREATEST(1, NULL)).
    plain, capped = await stores.subscribe(), await stores.subscribe(max_concurrency=3)
    rated = await stores.subscribe(max_rate=2.5)
    await stores.publish(*(event(f"k{n}", n) for n in range(5)))

    claimed = await stores.outbox.claim(10, LEASE)

    assert [sum(c.subscription_id == sid for c in claimed) for sid in (plain, capped, rated)] == [5, 3, 2]


async def test_a_spare_dispatcher_claims_only_for_subscriptions_that_do_not_limit_their_sink(
    stores: DeliveryHarness,
) -> None:
    # maxConcurrency and maxRate are kept by each dispatcher for itself: a spare one
    # (KOPPELHUB_DISPATCH_PROCESSES) leaves them to the work processes' dispatchers.
    plain, capped = await stores.subscribe(), await stores.subscribe(max_concurrency=3)
    rated = await stores.subscribe(max_rate=2.5)
    await stores.publish(*(event(f"k{n}", n) for n in range(5)))

    spared = await stores.spare_outbox.claim(20, LEASE)
    claimed = await stores.outbox.claim(20, LEASE)

    assert {c.subscription_id for c in spared} == {plain} and len(spared) == 5
    assert [sum(c.subscription_id == sid for c in claimed) for sid in (plain, capped, rated)] == [0, 3, 2]


async def test_a_recording_says_whether_a_later_delivery_of_its_key_waits(stores: DeliveryHarness) -> None:
    # The dispatcher claims again after a recording only then (issue 17: no empty claims).
    keyed, unordered = await stores.subscribe(), await stores.subscribe(ordering="none")
    await stores.publish(event("k", 1), event("k", 2), event("other", 3))
    first, other = await stores.outbox.claim(10, LEASE, {keyed: 10, unordered: 0})
    [loose] = await stores.outbox.claim(1, LEASE, {keyed: 0, unordered: 1})  # "k" 1, no key order

    assert (first.event["data"]["n"], other.event["data"]["n"], loose.event["data"]["n"]) == (1, 3, 1)
    assert await stores.outbox.record([outcome(other, "delivered", code=204)]) is False
    assert await stores.outbox.record([outcome(loose, "delivered", code=204)]) is False
    assert await stores.outbox.record([outcome(first, "delivered", code=204)]) is True
    assert await stores.outbox.record([]) is False


async def test_a_failed_head_holds_back_its_key_until_its_next_try(stores: DeliveryHarness) -> None:
    sid = await stores.subscribe()
    await stores.publish(event("k", 1), event("k", 2))
    [head] = await stores.outbox.claim(10, LEASE, {sid: 10})

    await stores.outbox.record([outcome(head, "failed", retry_in=300)])

    head_row = await stores.row(head.id)
    follower = next(d for d in await stores.log(sid) if d["id"] != head.id)
    assert head_row["status"] == "failed" and head_row["last_error"] == "http_500"
    assert follower["next_attempt_at"] == head_row["next_attempt_at"]
    assert await stores.outbox.claim(10, LEASE, {sid: 10}) == []


async def test_an_outcome_from_a_lost_lease_is_not_recorded(stores: DeliveryHarness) -> None:
    sid = await stores.subscribe()
    await stores.publish(event())
    [c] = await stores.outbox.claim(10, LEASE)
    await stores.outbox.record([outcome(c, "delivered", code=200)])

    await stores.outbox.record([outcome(c, "failed")])  # the same attempt, recorded late

    row = await stores.row(c.id)
    assert (row["status"], row["attempts"]) == ("delivered", 1)
    assert len(await stores.deliveries.attempts(sid, c.id)) == 2  # the attempt log keeps both


async def test_an_outcome_of_a_delivery_deleted_meanwhile_is_dropped_and_the_rest_of_its_batch_recorded(
    stores: DeliveryHarness,
) -> None:
    gone = await stores.subscribe()
    kept = await stores.subscribe(sink="https://other.example/hook")
    await stores.publish(event())
    claimed = await stores.outbox.claim(10, LEASE)
    await stores.subscriptions.delete(gone)  # its deliveries go with it

    await stores.outbox.record([outcome(c, "delivered", code=204) for c in claimed])

    assert [d["status"] for d in await stores.log(kept)] == ["delivered"]
    [mine] = [c for c in claimed if c.subscription_id == kept]
    assert len(await stores.deliveries.attempts(kept, mine.id)) == 1


async def test_a_dead_delivery_raises_an_alert_for_those_who_select_it_only(stores: DeliveryHarness) -> None:
    flow = await stores.subscribe(types=["nl.example.thing.changed.v1"])
    everything = await stores.subscribe()
    alerts = await stores.subscribe(types=[DELIVERY_DEAD])
    await stores.publish(event())
    claimed = await stores.outbox.claim(10, LEASE)
    [c] = [c for c in claimed if c.subscription_id == flow]

    await stores.outbox.record([outcome(c, "dead", retry_in=None)])

    assert (await stores.row(c.id))["status"] == "dead"
    [alert] = await stores.outbox.claim(10, LEASE)
    assert (alert.subscription_id, alert.event["type"]) == (alerts, DELIVERY_DEAD)
    assert alert.event["data"]["deliveryId"] == str(c.id)
    assert len(await stores.log(everything)) == 1  # the flow event only, not the alert


async def test_a_dead_alert_raises_no_alert_of_its_own(stores: DeliveryHarness) -> None:
    flow = await stores.subscribe(types=["nl.example.thing.changed.v1"])
    alerts = await stores.subscribe(types=[DELIVERY_DEAD])
    await stores.publish(event())
    [c] = await stores.outbox.claim(10, LEASE)
    await stores.outbox.record([outcome(c, "dead", retry_in=None)])
    [alert] = await stores.outbox.claim(10, LEASE)

    await stores.outbox.record([outcome(alert, "dead", retry_in=None)])

    assert len(await stores.log(alerts)) == 1 and len(await stores.log(flow)) == 1


async def test_a_410_disables_the_subscription_keeps_the_delivery_open_and_alerts(
    stores: DeliveryHarness,
) -> None:
    gone = await stores.subscribe(types=["nl.example.thing.changed.v1"])
    watcher = await stores.subscribe(types=[SUBSCRIPTION_DISABLED])
    await stores.publish(event())
    [c] = await stores.outbox.claim(10, LEASE)

    result = outcome(c, "failed", code=410, next_attempt_at=datetime.now(UTC), disable_reason="gone")
    await stores.outbox.record([result])

    sub = await stores.subscriptions.get(gone)
    assert (sub.status, sub.status_reason) == ("disabled", "gone")
    assert (await stores.row(c.id))["status"] == "failed"
    [alert] = await stores.outbox.claim(10, LEASE)
    assert (alert.subscription_id, alert.event["type"]) == (watcher, SUBSCRIPTION_DISABLED)
    assert alert.event["data"]["reason"] == "gone"


async def test_failing_longer_than_the_limit_disables_the_subscription(stores: DeliveryHarness) -> None:
    sid = await stores.subscribe()
    watcher = await stores.subscribe(types=[SUBSCRIPTION_DISABLED])
    await stores.publish(event("a"), event("b"))
    first, second = await stores.outbox.claim(10, LEASE, {sid: 10})
    await stores.outbox.record([outcome(first, "failed")])  # the failure clock starts
    assert (await stores.subscriptions.get(sid)).status == "active"  # an hour is far off

    await stores.outbox_disabling_after(0).record([outcome(second, "failed")])

    sub = await stores.subscriptions.get(sid)
    assert (sub.status, sub.status_reason) == ("disabled", "nothing but failed attempts for 0 s")
    [alert] = await stores.outbox.claim(10, LEASE)
    assert (alert.subscription_id, alert.event["data"]["subscriptionId"]) == (watcher, str(sid))


async def test_a_delivery_stops_the_failure_clock(stores: DeliveryHarness) -> None:
    sid = await stores.subscribe(ordering="none")
    await stores.publish(event("a"), event("b"), event("c"))
    first, second, third = await stores.outbox.claim(10, LEASE, {sid: 10})
    await stores.outbox.record([outcome(first, "failed")])
    await stores.outbox.record([outcome(second, "delivered", code=200)])

    await stores.outbox_disabling_after(0.5).record([outcome(third, "failed")])  # the clock restarts

    assert (await stores.subscriptions.get(sid)).status == "active"


async def test_next_due_ignores_paused_subscriptions(stores: DeliveryHarness) -> None:
    sid = await stores.subscribe()
    assert await stores.outbox.next_due() is None
    await stores.publish(event())
    assert await stores.outbox.next_due() is not None

    await stores.subscriptions.update(sid, {}, enabled=False)

    assert await stores.outbox.next_due() is None


async def test_one_events_deliveries_in_a_claim_share_one_body_encoded_once(stores: DeliveryHarness) -> None:
    first, second = await stores.subscribe(), await stores.subscribe(content_mode="binary")
    third = await stores.subscribe()
    await stores.publish(event("k", n=1))

    claimed = await stores.outbox.claim(10, LEASE, {first: 10, second: 10, third: 10})

    assert len(claimed) == 3 and len({id(c.event) for c in claimed}) == 1
    bodies = [encode(c.event, c.content_mode) for c in claimed]
    assert bodies[0] == encode(dict(claimed[0].event), claimed[0].content_mode)
    # encoded once per content mode, on the shared event: the same bytes object every time
    structured = [b for (b, _), c in zip(bodies, claimed, strict=True) if c.content_mode == "structured"]
    assert structured[0] is structured[1]


async def test_a_failed_attempt_is_due_at_its_retry_time_though_its_lease_would_run_longer(
    stores: DeliveryHarness,
) -> None:
    await stores.subscribe()
    await stores.publish(event())
    [c] = await stores.outbox.claim(10, LEASE)

    await stores.outbox.record([outcome(c, "failed", retry_in=1.0)])

    due = await stores.outbox.next_due()
    assert due is not None and due < datetime.now(UTC) + timedelta(seconds=LEASE / 2)


async def test_a_delivery_whose_lease_ran_out_is_claimed_again(stores: DeliveryHarness) -> None:
    await stores.subscribe()
    await stores.publish(event())
    [c] = await stores.outbox.claim(10, 0.3)
    assert await stores.outbox.claim(10, LEASE) == []  # leased for another 0.3 s

    async def claimed_again() -> bool:
        return [again.id for again in await stores.outbox.claim(10, LEASE)] == [c.id]

    await eventually(claimed_again, timeout=10, what="the claim after the lease")


async def test_a_manual_retry_of_a_delivery_in_flight_makes_it_due_at_once(stores: DeliveryHarness) -> None:
    sid = await stores.subscribe()
    await stores.publish(event())
    [c] = await stores.outbox.claim(10, LEASE)

    await stores.deliveries.retry(sid, c.id)

    assert [again.id for again in await stores.outbox.claim(10, LEASE)] == [c.id]


async def test_the_delivery_log_shows_a_claimed_delivery_due_at_its_leases_end(
    stores: DeliveryHarness,
) -> None:
    sid = await stores.subscribe()
    await stores.publish(event())
    [c] = await stores.outbox.claim(10, LEASE)

    [row] = await stores.log(sid)

    assert row["id"] == c.id and row["next_attempt_at"] > datetime.now(UTC) + timedelta(seconds=LEASE - 10)
